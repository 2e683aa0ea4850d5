#!/usr/bin/env python3
"""Fault suite for cachasided: three daemons, one redis-server, the example
upstream behind a fault-injecting HTTP proxy, steady load, faults in
sequence, invariants checked throughout.  See tests/faults/README.md;
the processes and the proxy are in faultproc.py.

Environment: CACHASIDED_BIN, CACHASIDED_UPSTREAM_BIN, REDIS_SERVER (or
REDIS_SERVER_BIN).  Exit 0 when every invariant held, 1 otherwise.

Only the Python standard library; loopback only; every process is started
and stopped here.
"""
import fnmatch
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

sys.dont_write_bytecode = True     # keep the source tree clean
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [HERE, os.path.dirname(HERE)]       # faultproc.py, and tests/cstest.py
from cstest import Conn, RespError, free_port  # noqa: E402
from faultproc import Proxy, Redis, Upstream, now, wait_ping  # noqa: E402

# ---- the configuration every daemon runs with ----
NDAEMONS = 3
CLIENTS_PER_DAEMON = 4
NKEYS = 50                      # p-001 .. p-050, served by `example-upstream -g 50`
IDS = ["p-%03d" % i for i in range(1, NKEYS + 1)]
NAMESPACES = {"h": "hash", "r": "raw"}
LOCK_TTL_MS = 1000
UPSTREAM_TIMEOUT_MS = 800
COMMAND_TIMEOUT_MS = 500
MAX_FETCHES = 4
PREFIX = "cache:"
# Every upstream read takes this long, so reads of one key can overlap and
# single-flight is put to the test; phases that need another latency set it.
BASE_LATENCY_MS = 150
# docs/design.md section 6: a reply never waits longer than upstream_timeout + lock_ttl +
# command_timeout.  The slack covers this loaded 2-core machine and the
# Python client's own scheduling; the check is about replies that hang, not
# about speed.
BOUND_S = (UPSTREAM_TIMEOUT_MS + LOCK_TTL_MS + COMMAND_TIMEOUT_MS) / 1000.0 + 1.5
NO_REPLY_S = BOUND_S + 5.0      # a reply later than this counts as never sent
# Reads whose intervals overlap by less than this are not counted as
# concurrent (the proxy notices a closed connection a scheduling step late).
OVERLAP_TOLERANCE_S = 0.1
# After a Redis fault ends, daemons may still be reconnecting (capped
# backoff) and go straight to the upstream (docs/design.md section 6: allowed, coalesced
# in-process only): cross-daemon overlaps are excused this long after.
REDIS_RECOVERY_S = 6.0

INVARIANTS = [
    ("daemon-alive", "no daemon crashes; each answers PING at the end and exits 0 on SIGTERM"),
    ("reply-bound", "every request gets a reply (record, -UPSTREAM or -TRYAGAIN) within %.1f s" % BOUND_S),
    ("own-record", "a record answered for key K is K's record, in a version the upstream served for K"),
    ("upstream-single-read", "no two concurrent upstream reads of a key within lock_ttl_ms"),
    ("upstream-max-fetches", "at most max_upstream_fetches concurrent reads per namespace per daemon"),
    ("redis-records", "every record in Redis is one the upstream served for that key, never one invalidated before it was stored"),
    ("answer-after-invalidation", "no read sent after a DEL or INVALIDATE of its key was acknowledged, through any "
     "daemon, is answered with data the upstream served before that invalidation was sent"),
]




# ---- shared state: phases and violations ----
class State:
    def __init__(self):
        self.lock = threading.Lock()
        self.t0 = now()
        self.phase = "setup"
        self.phases = []            # (name, start, end)
        self.viol = {}              # (inv, phase) -> [count, [examples]]
        self.notes = []
        self.stop_load = False
        self.requests = 0
        self.replies = {"record": 0, "error": 0}
        self.skipped = set()        # invariants not checked
        self.other_keys = set()
        self.excused = {}           # reason -> overlapping pairs not counted

    def rel(self, t):
        return t - self.t0

    def phase_at(self, t):
        for name, a, b in self.phases:
            if a <= t < (b if b is not None else 1e18):
                return name
        return "setup"

    def violation(self, inv, msg, t=None):
        ph = self.phase if t is None else self.phase_at(t)
        with self.lock:
            ent = self.viol.setdefault((inv, ph), [0, []])
            ent[0] += 1
            if len(ent[1]) < 4:
                ent[1].append("t=%.1fs %s" % (self.rel(now() if t is None else t), msg))

    def note(self, msg):
        with self.lock:
            self.notes.append(msg)
        log("note: " + msg)

    def begin_phase(self, name):
        t = now()
        with self.lock:
            if self.phases and self.phases[-1][2] is None:
                n, a, _ = self.phases[-1]
                self.phases[-1] = (n, a, t)
            self.phases.append((name, t, None))
            self.phase = name
        log("phase %s" % name)


S = State()


def log(msg):
    sys.stdout.write("[%6.1f] %s\n" % (now() - S.t0, msg))
    sys.stdout.flush()


# ---- versions, upstream reads and invalidations ----
#
# How the stale-write-back check works.  The proxy numbers every upstream
# read of a key K (1, 2, 3, ...) when the request arrives, and a 200 body
# carries that number as field "ver".  So a record's version tells when the
# data in it was read: fetch_start[K, ver].  The suite records, for every
# DEL or INVALIDATE covering K that Redis acknowledged, the time it was
# sent and the time its reply came back.  A record of K observed in Redis
# at time T_obs with version v is a stale write-back when some acknowledged
# invalidation of K was SENT after fetch_start[K, v] (so the data predates
# the invalidation for sure) and ACKNOWLEDGED before T_obs (so the record
# was written after the invalidation ran, since the invalidation removed any
# record that existed then).  A fetch that began between the send and the
# acknowledgement is ambiguous and never flagged.  Records are checked by a
# scanner throughout the run and once at the end, so the check does not
# depend on a record outliving its short TTL.
class Book:
    def __init__(self):
        self.lock = threading.Lock()
        self.ver = {}               # key -> last version handed out
        self.fetch_start = {}       # (key, ver) -> time the read arrived
        self.served = set()         # (key, ver) sent as a complete 200 for key
        self.reads = []             # dicts: d, key, ns, ver, start, end, fault, status
        self.invals = {}            # key -> [(t_send, t_ack)] acknowledged
        self.windows = []           # (t0, t1, daemons or None): Redis unreachable

    def begin(self, d, key, ns):
        t = now()
        with self.lock:
            v = self.ver.get(key, 0) + 1
            self.ver[key] = v
            self.fetch_start[(key, v)] = t
            rec = {"d": d, "key": key, "ns": ns, "ver": v, "start": t, "end": None,
                   "fault": None, "status": None}
            self.reads.append(rec)
        return rec

    def end(self, rec, status):
        with self.lock:
            if rec["end"] is None:
                rec["end"] = now()
                rec["status"] = status

    def inval(self, keys, t_send, t_ack):
        with self.lock:
            for k in keys:
                self.invals.setdefault(k, []).append((t_send, t_ack))

    def window(self, t0, t1, daemons=None):
        with self.lock:
            self.windows.append((t0, t1, daemons))

    def open_reads(self):
        with self.lock:
            return [r for r in self.reads if r["end"] is None]

    def stale_against(self, key, ver, t_obs):
        """The invalidation that makes (key, ver) stale at t_obs, or None."""
        with self.lock:
            fs = self.fetch_start.get((key, ver))
            if fs is None:
                return None
            for t_send, t_ack in self.invals.get(key, ()):
                if t_send > fs and t_ack < t_obs:
                    return (fs, t_send, t_ack)
        return None


B = Book()


def check_record(key, fields, where, t_obs=None):
    """Check one record (dict of str -> str) of key; returns a problem or None."""
    ns, rid = key.split(":", 1)
    if NAMESPACES[ns] == "raw" and where == "redis":
        body = fields.get("__body")
        if body is None:
            return "raw record without __body: %r" % sorted(fields)[:6]
        fields = body
    if isinstance(fields, str):
        try:
            fields = json.loads(fields)
        except ValueError:
            return "body is not the upstream's JSON: %r" % fields[:60]
        if not isinstance(fields, dict):
            return "body is not a JSON object: %r" % str(fields)[:60]
        fields = {k: str(v) for k, v in fields.items()}
    got = fields.get("id")
    try:
        ver = int(fields.get("ver", ""))
    except ValueError:
        ver = None
    if got != rid:
        return "holds the record of %r (ver %s), not of %r" % (got, ver, rid)
    if ver is None or (key, ver) not in B.served:
        return "holds version %s, which the upstream never served for it" % ver
    if t_obs is not None:
        st = B.stale_against(key, ver, t_obs)
        if st is not None and where == "redis":
            return ("stale write-back: version %d read at t=%.2fs, invalidated (sent t=%.2fs, "
                    "acknowledged t=%.2fs) and still stored at t=%.2fs"
                    % (ver, S.rel(st[0]), S.rel(st[1]), S.rel(st[2]), S.rel(t_obs)))
        if st is not None:
            return ("stale answer: version %d read at t=%.2fs, invalidated (sent t=%.2fs, "
                    "acknowledged t=%.2fs), answered to a read sent at t=%.2fs"
                    % (ver, S.rel(st[0]), S.rel(st[1]), S.rel(st[2]), S.rel(t_obs)))
    return None


# ---- processes ----
class Daemon:
    def __init__(self, idx, workdir, binary, rport, pport):
        self.idx = idx
        self.bin = binary
        self.port = free_port()
        self.conf = os.path.join(workdir, "d%d.ini" % idx)
        self.logpath = os.path.join(workdir, "d%d.log" % idx)
        self.rport, self.pport = rport, pport
        self.proc = None
        self.down = True            # killed or restarting on purpose
        self.gen = 0
        self.ttl = 2
        self.write_conf()

    def write_conf(self, max_fetches=True):
        lines = [
            "[server]", "listen = 127.0.0.1:%d" % self.port, "admin_listen =",
            "log_level = notice", "shutdown_grace_ms = 3000",
            "[redis]", "host = 127.0.0.1", "port = %d" % self.rport, "key_prefix = %s" % PREFIX,
            "connect_timeout_ms = 1000", "command_timeout_ms = %d" % COMMAND_TIMEOUT_MS,
            "[cache]", "ttl_s = %d" % self.ttl, "ttl_jitter_pct = 50", "negative_ttl_s = 1",
            "lock_ttl_ms = %d" % LOCK_TTL_MS, "lock_poll_ms = 50",
            "upstream_timeout_ms = %d" % UPSTREAM_TIMEOUT_MS, "upstream_connections = 4",
        ]
        if max_fetches and "upstream-max-fetches" not in S.skipped:
            lines.append("max_upstream_fetches = %d" % MAX_FETCHES)
        for ns, fmt in NAMESPACES.items():
            lines += ["[namespace:%s]" % ns,
                      "upstream = http://127.0.0.1:%d/%s/{id}" % (self.pport, ns),
                      "format = %s" % fmt]
        with open(self.conf + ".tmp", "w") as f:
            f.write("\n".join(lines) + "\n")
        os.rename(self.conf + ".tmp", self.conf)

    def config_ok(self):
        r = subprocess.run([self.bin, "-t", "-c", self.conf], capture_output=True, text=True)
        return r.returncode == 0, r.stderr.strip()

    def start(self):
        logf = open(self.logpath, "a")
        self.proc = subprocess.Popen([self.bin, "-c", self.conf], stdin=subprocess.DEVNULL,
                                     stdout=logf, stderr=logf)
        logf.close()
        if not wait_ping(self.port, 10):
            raise RuntimeError("daemon %d did not start; log %s" % (self.idx, self.logpath))
        self.gen += 1
        self.down = False

    def tail(self, n=15):
        try:
            with open(self.logpath, errors="replace") as f:
                return "".join(f.readlines()[-n:])
        except OSError:
            return ""


# ---- load, invalidations, scanner, process watch ----
def check_value(key, val, t_send):
    """Check one reply value for key (a record, an allowed error or a problem)."""
    if isinstance(val, RespError):
        if val.startswith("-UPSTREAM") or val.startswith("-TRYAGAIN"):
            S.replies["error"] += 1
            return
        S.violation("reply-bound", "%s: unexpected error reply %s" % (key, val[:81]))
        return
    ns = key.split(":", 1)[0]
    if NAMESPACES[ns] == "hash":
        if not isinstance(val, list):
            S.violation("own-record", "%s: HGETALL answered %r" % (key, val))
            return
        if not val:
            S.violation("own-record", "%s: answered not-found for a key the upstream has" % key)
            return
        fields = {val[i].decode("latin-1"): val[i + 1].decode("latin-1") for i in range(0, len(val) - 1, 2)}
    else:
        if val is None:
            S.violation("own-record", "%s: answered not-found for a key the upstream has" % key)
            return
        if not isinstance(val, bytes):
            S.violation("own-record", "%s: GET answered %r" % (key, val))
            return
        fields = val.decode("latin-1")
    # Sent after an acknowledged invalidation of the key: the answer must
    # come from an upstream read that began after the invalidation was sent.
    p = check_record(key, fields, "reply", t_send)
    if p and p.startswith("stale answer"):
        S.violation("answer-after-invalidation", "%s: %s" % (key, p))
    elif p:
        S.violation("own-record", "%s: reply %s" % (key, p))
    else:
        S.replies["record"] += 1


def request(d, conn, words, keys):
    """Send one command, check its reply; returns False when conn is unusable."""
    gen = d.gen
    t = now()
    try:
        conn.send(*words)
        val = conn.reply()
    except socket.timeout:
        S.violation("reply-bound", "daemon %d: no reply to %s within %.0f s" % (d.idx, " ".join(words[:2]), NO_REPLY_S))
        return False
    except (OSError, ConnectionError) as e:
        if not (d.down or d.gen != gen):
            S.violation("reply-bound", "daemon %d: %s %s: connection lost without a reply (%s)"
                        % (d.idx, words[0], words[1], e))
        return False
    dt = now() - t
    S.requests += 1
    if dt > BOUND_S:
        S.violation("reply-bound", "daemon %d: %s %s answered after %.2f s" % (d.idx, words[0], words[1], dt))
    if words[0] == "MGET":
        if isinstance(val, RespError):
            check_value(keys[0], val, t)
        elif not isinstance(val, list) or len(val) != len(keys):
            S.violation("own-record", "MGET of %d keys answered %r" % (len(keys), str(val)[:80]))
        else:
            for k, v in zip(keys, val):
                check_value(k, v, t)
    else:
        check_value(keys[0], val, t)
    return True


def client_loop(d):
    conn = None
    while not S.stop_load:
        if d.down:
            if conn:
                conn.close()
                conn = None
            time.sleep(0.1)
            continue
        if conn is None:
            gen = d.gen
            try:
                conn = Conn(d.port, NO_REPLY_S)
            except OSError as e:
                if not (d.down or d.gen != gen):
                    S.violation("reply-bound", "daemon %d: cannot connect (%s)" % (d.idx, e))
                time.sleep(0.2)
                continue
        r = random.random()
        if r < 0.45:
            k = "h:" + random.choice(IDS)
            words, keys = ["HGETALL", k], [k]
        elif r < 0.9:
            k = "r:" + random.choice(IDS)
            words, keys = ["GET", k], [k]
        else:
            keys = ["r:" + i for i in random.sample(IDS, 8)]
            words = ["MGET"] + keys
        if not request(d, conn, words, keys):
            conn.close()
            conn = None
        time.sleep(random.random() * 0.02)
    if conn:
        conn.close()


def invalidate(daemons, words, keys):
    """One DEL/INVALIDATE through a live daemon; acknowledged ones are booked."""
    live = [d for d in daemons if not d.down]
    if not live:
        return
    d = random.choice(live)
    gen = d.gen
    try:
        c = Conn(d.port, NO_REPLY_S)
    except OSError:
        return
    t = now()
    try:
        c.send(*words)
        val = c.reply()
    except socket.timeout:
        S.violation("reply-bound", "daemon %d: no reply to %s within %.0f s" % (d.idx, " ".join(words), NO_REPLY_S))
        return
    except (OSError, ConnectionError) as e:
        if not (d.down or d.gen != gen):
            S.violation("reply-bound", "daemon %d: %s: connection lost (%s)" % (d.idx, " ".join(words), e))
        return
    finally:
        c.close()
    t_ack = now()
    if t_ack - t > BOUND_S:
        S.violation("reply-bound", "daemon %d: %s answered after %.2f s" % (d.idx, " ".join(words), t_ack - t))
    if isinstance(val, int):
        B.inval(keys, t, t_ack)
    elif not (isinstance(val, RespError) and val.startswith("-TRYAGAIN")):
        S.violation("reply-bound", "daemon %d: %s answered %r" % (d.idx, " ".join(words), val))


def inval_loop(daemons):
    globs = ["p-01*", "p-00?", "p-04[0-4]", "*"]
    while not S.stop_load:
        time.sleep(0.25)
        if random.random() < 0.85:
            keys = ["%s:%s" % (random.choice(list(NAMESPACES)), random.choice(IDS))
                    for _ in range(random.choice((1, 1, 2)))]
            invalidate(daemons, ["DEL"] + keys, keys)
        else:
            ns, g = random.choice(list(NAMESPACES)), random.choice(globs)
            keys = ["%s:%s" % (ns, i) for i in IDS if fnmatch.fnmatchcase(i, g)]
            invalidate(daemons, ["INVALIDATE", "%s:%s" % (ns, g)], keys)


RECORD_KEY = re.compile(r"^%s([^:{}]+):\{(.*)\}$" % re.escape(PREFIX))


def scan_redis(port, seen, phase_t=None):
    """Check every record under the prefix; returns False if Redis did not answer."""
    try:
        c = Conn(port, 1.0)
    except OSError:
        return False
    try:
        cursor, names = b"0", []
        while True:
            r = c.cmd("SCAN", cursor, "MATCH", PREFIX + "*", "COUNT", "1000")
            if isinstance(r, RespError):
                return False
            cursor, batch = r
            names += batch
            if cursor == b"0":
                break
        for raw in names:
            name = raw.decode("latin-1")
            m = RECORD_KEY.match(name)
            if not m or m.group(1) not in NAMESPACES:
                # Not a record (a fix may add bookkeeping keys): not judged.
                if name not in S.other_keys and len(S.other_keys) < 5:
                    S.other_keys.add(name)
                    S.note("key %r under the prefix is not a record; not checked" % name)
                continue
            key = "%s:%s" % (m.group(1), m.group(2))
            t_req = now()
            val = c.cmd("HGETALL", name)
            if isinstance(val, RespError):
                S.violation("redis-records", "%s: not a hash (%s)" % (name, val), phase_t)
                continue
            if not val:
                continue            # expired in between
            fields = {val[i].decode("latin-1"): val[i + 1].decode("latin-1") for i in range(0, len(val) - 1, 2)}
            if "__exp" not in fields:
                continue            # a fill's lock alone (it lives in the record's hash)
            if "__nf" in fields:
                p = "not-found sentinel for a key the upstream has"
            else:
                p = check_record(key, fields, "redis", t_req)
            if p and (name, p) not in seen:
                seen.add((name, p))
                S.violation("redis-records", "%s %s" % (name, p), phase_t)
        return True
    except (OSError, ConnectionError, ValueError):
        return False
    finally:
        c.close()


def scan_loop(redis):
    seen = set()
    while not S.stop_load:
        scan_redis(redis.port, seen)
        time.sleep(0.5)


def watch_loop(daemons, stop):
    while not stop.is_set():
        for d in daemons:
            if d.down or d.proc is None:
                continue
            rc = d.proc.poll()
            if rc is not None:
                d.down = True
                S.violation("daemon-alive", "daemon %d exited unasked with status %s; log tail:\n%s"
                            % (d.idx, rc, d.tail()))
                try:
                    d.start()
                    S.note("daemon %d restarted after its crash" % d.idx)
                except RuntimeError as e:
                    S.note(str(e))
        time.sleep(0.2)


# ---- analysis of the proxy's read log ----
def dump_log(workdir):
    """The upstream reads and invalidations, for a look after a failure."""
    with B.lock, open(os.path.join(workdir, "reads.log"), "w") as f:
        for r in B.reads:
            f.write("%8.3f %8s daemon=%d %s v%d %s\n" % (
                S.rel(r["start"]), "%.3f" % S.rel(r["end"]) if r["end"] else "open",
                r["d"], r["key"], r["ver"], r["status"]))
        for k, lst in sorted(B.invals.items()):
            for t_send, t_ack in lst:
                f.write("%8.3f %8.3f inval %s\n" % (S.rel(t_send), S.rel(t_ack), k))


def analyse_reads():
    with B.lock:
        reads = [dict(r) for r in B.reads]
        windows = list(B.windows)
        invals = {k: list(v) for k, v in B.invals.items()}
    end_t = now()
    for r in reads:
        if r["end"] is None:
            r["end"] = end_t
    lock_s = LOCK_TTL_MS / 1000.0

    def excused(a, b):
        # A DEL/INVALIDATE of the key between the two reads removed a's lock
        # (and detached a's in-process flight): b may start its own fill.
        for t_send, t_ack in invals.get(a["key"], ()):
            if t_send < b["start"] and t_ack > a["start"] - lock_s:
                return "after a DEL/INVALIDATE of the key"
        # Redis unreachable or restarted empty: one read per daemon is allowed
        # (docs/design.md section 6), so only reads from different daemons are excused.
        if a["d"] != b["d"]:
            for t0, t1, ds in windows:
                if t0 <= b["start"] <= t1 and (ds is None or a["d"] in ds or b["d"] in ds):
                    return "from different daemons while Redis was unreachable or a daemon restarting"
        return None

    by_key = {}
    for r in reads:
        by_key.setdefault(r["key"], []).append(r)
    for key, rs in by_key.items():
        rs.sort(key=lambda r: r["start"])
        for i, b in enumerate(rs):
            for a in rs[:i]:
                if b["start"] - a["start"] >= lock_s or a["end"] - OVERLAP_TOLERANCE_S <= b["start"]:
                    continue
                why = excused(a, b)
                if why:
                    S.excused[why] = S.excused.get(why, 0) + 1
                    continue
                S.violation("upstream-single-read",
                            "%s: read v%d by daemon %d (t=%.2f..%.2f) overlaps v%d by daemon %d "
                            "started t=%.2f" % (key, a["ver"], a["d"], S.rel(a["start"]), S.rel(a["end"]),
                                                b["ver"], b["d"], S.rel(b["start"])), b["start"])
                break
    if "upstream-max-fetches" in S.skipped:
        return
    for d in range(NDAEMONS):
        for ns in NAMESPACES:
            ev = []
            for r in reads:
                if r["d"] == d and r["ns"] == ns:
                    ev.append((r["start"], 1))
                    ev.append((r["end"] - OVERLAP_TOLERANCE_S, -1))
            ev.sort()
            n, peak, since = 0, 0, None
            for t, x in ev:            # one violation per burst over the limit, with its peak
                n += x
                if n > MAX_FETCHES:
                    peak, since = max(peak, n), since or t
                elif since is not None:
                    S.violation("upstream-max-fetches", "daemon %d namespace %s: up to %d concurrent "
                                "upstream reads from t=%.2fs" % (d, ns, peak, S.rel(since)), since)
                    peak, since = 0, None


# ---- the faults ----
def fault_redis_kill(redis, hold):
    t0 = now()
    redis.kill()
    time.sleep(hold)
    redis.start()
    B.window(t0, now() + REDIS_RECOVERY_S)


def fault_redis_stop(redis, hold):
    t0 = now()
    redis.proc.send_signal(signal.SIGSTOP)
    time.sleep(hold)
    redis.proc.send_signal(signal.SIGCONT)
    B.window(t0, now() + REDIS_RECOVERY_S)


def fault_redis_cmd(redis, words, hold):
    t0 = now()

    def run():
        try:
            c = Conn(redis.port, hold + 10)
            c.cmd(*words)
            c.close()
        except (OSError, ConnectionError) as e:
            S.note("%s failed: %s" % (" ".join(words), e))
    th = threading.Thread(target=run)
    th.start()
    time.sleep(hold)
    th.join()
    B.window(t0, now() + REDIS_RECOVERY_S)


def fault_kill_lockholder(daemons, redis, upstream, rounds):
    """SIGKILL a daemon while it holds a fill lock; others read and DEL the key."""
    upstream.control("PUT", "/_latency", "500")
    try:
        for _ in range(rounds):
            time.sleep(1.0)
            victim = key = None
            end = now() + 5
            rc = Conn(redis.port, 2.0)
            while now() < end and victim is None:
                for r in B.open_reads():
                    d = daemons[r["d"]]
                    if d.down:
                        continue
                    ns, rid = r["key"].split(":", 1)
                    if rc.cmd("HEXISTS", "%s%s:{%s}" % (PREFIX, ns, rid), "__lock") == 1:
                        victim, key = d, r["key"]
                        break
                time.sleep(0.02)
            rc.close()
            if victim is None:
                S.note("no daemon was found holding a fill lock in this round")
                continue
            victim.down = True
            t_kill = now()
            victim.proc.kill()
            victim.proc.wait()
            log("killed daemon %d holding the lock of %s" % (victim.idx, key))
            others = [d for d in daemons if d is not victim and not d.down]
            ths = []
            for d in others:
                def rd(d=d):
                    try:
                        c = Conn(d.port, NO_REPLY_S)
                    except OSError:
                        return
                    w = ["HGETALL", key] if key.startswith("h:") else ["GET", key]
                    request(d, c, w, [key])
                    c.close()
                th = threading.Thread(target=rd)
                th.start()
                ths.append(th)
            # DEL the key while a survivor's takeover read is in progress.
            end = now() + 3
            while now() < end:
                if any(r["key"] == key and r["d"] != victim.idx and r["start"] > t_kill
                       for r in B.open_reads()):
                    invalidate(others, ["DEL", key], [key])
                    log("DEL %s during a takeover read" % key)
                    break
                time.sleep(0.01)
            for th in ths:
                th.join()
            time.sleep(0.8)
            victim.start()
            B.window(now(), now() + 3.0, {victim.idx})
    finally:
        upstream.control("PUT", "/_latency", str(BASE_LATENCY_MS))


def fault_sighup(daemons, seconds):
    for i in range(seconds):
        for d in daemons:
            d.ttl = 2 + i % 2        # a real change on every other reload
            d.write_conf()
            if not d.down and d.proc.poll() is None:
                d.proc.send_signal(signal.SIGHUP)
        time.sleep(1.0)
    for d in daemons:
        d.ttl = 2
        d.write_conf()
        if not d.down:
            d.proc.send_signal(signal.SIGHUP)


def run_phases(daemons, redis, upstream, proxy):
    def phase(name, recover=3.0):
        S.begin_phase(name)
        return recover

    time.sleep(phase("baseline") + 2)

    phase("redis-kill")
    fault_redis_kill(redis, 2.0)
    time.sleep(4)

    phase("redis-sigstop")
    fault_redis_stop(redis, 3.0)
    time.sleep(4)

    phase("redis-client-pause")
    fault_redis_cmd(redis, ["CLIENT", "PAUSE", "3000", "ALL"], 3.0)
    time.sleep(4)

    phase("redis-debug-sleep")
    fault_redis_cmd(redis, ["DEBUG", "SLEEP", "3"], 3.0)
    time.sleep(4)

    phase("upstream-500")
    bad = IDS[::5]
    for i in bad:
        upstream.control("PUT", "/_status/" + i, "500")
    time.sleep(5)
    for i in bad:
        upstream.control("DELETE", "/_status/" + i)
    time.sleep(2)

    phase("upstream-timeout")
    upstream.control("PUT", "/_latency", str(UPSTREAM_TIMEOUT_MS + 300))
    time.sleep(4)
    upstream.control("PUT", "/_latency", str(BASE_LATENCY_MS))
    time.sleep(3)

    for mode, rate in (("reset", 0.3), ("truncate", 0.3), ("interim", 0.5),
                       ("surplus", 0.3), ("dupcl", 0.3)):
        phase("upstream-" + mode)
        proxy.set_fault(mode, rate)
        time.sleep(5)
        proxy.set_fault(None, 0)
        time.sleep(2)

    phase("kill-lock-holder")
    fault_kill_lockholder(daemons, redis, upstream, 3)
    time.sleep(2)

    phase("sighup-every-second")
    fault_sighup(daemons, 8)
    time.sleep(2)


def summary():
    failed = 0
    print("\n==== fault suite summary ====")
    for inv, text in INVARIANTS:
        if inv in S.skipped:
            print("SKIP %-22s %s" % (inv, text))
            continue
        hits = [(ph, v) for (i, ph), v in S.viol.items() if i == inv]
        if not hits:
            print("PASS %-22s %s" % (inv, text))
            continue
        failed += 1
        print("FAIL %-22s %s" % (inv, text))
        order = [p[0] for p in S.phases] + ["setup", "final"]
        for ph, (n, ex) in sorted(hits, key=lambda h: order.index(h[0]) if h[0] in order else 99):
            print("     phase %-22s %d violation(s)" % (ph, n))
            for e in ex:
                print("        " + e.replace("\n", "\n          | "))
    for n in S.notes:
        print("note: " + n)
    for why, n in sorted(S.excused.items()):
        print("info: %d overlapping upstream read pair(s) not counted: %s" % (n, why))
    print("info: %d requests answered (%d records checked, %d -UPSTREAM/-TRYAGAIN); %d upstream reads"
          % (S.requests, S.replies["record"], S.replies["error"], len(B.reads)))
    checked = len(INVARIANTS) - len(S.skipped)
    print("faults: %d passed, %d failed" % (checked - failed, failed))
    return failed


def main():
    dbin = os.environ.get("CACHASIDED_BIN")
    ubin = os.environ.get("CACHASIDED_UPSTREAM_BIN")
    rbin = os.environ.get("REDIS_SERVER_BIN") or os.environ.get("REDIS_SERVER") or shutil.which("redis-server")
    if not dbin or not ubin or not rbin:
        print("set CACHASIDED_BIN, CACHASIDED_UPSTREAM_BIN and REDIS_SERVER (make check-faults does)")
        return 2
    seed = int(os.environ.get("FAULTS_SEED", "0")) or random.randrange(1, 1 << 30)
    random.seed(seed)
    workdir = tempfile.mkdtemp(prefix="cachasided-faults.")
    log("seed %d (FAULTS_SEED to repeat); logs in %s" % (seed, workdir))
    redis = Redis(rbin, workdir)
    upstream = daemons = None
    stop_watch = threading.Event()
    threads = []
    try:
        redis.start()
        upstream = Upstream(ubin, workdir, NKEYS)
        upstream.control("PUT", "/_latency", str(BASE_LATENCY_MS))
        proxy = Proxy(upstream.port, NDAEMONS, IDS, B)
        daemons = [Daemon(i, workdir, dbin, redis.port, proxy.ports[i]) for i in range(NDAEMONS)]
        ok, err = daemons[0].config_ok()
        if not ok:
            S.skipped.add("upstream-max-fetches")
            S.note("cachasided -t rejects max_upstream_fetches (%s): that check is skipped" % err)
            for d in daemons:
                d.write_conf()
            ok, err = daemons[0].config_ok()
            if not ok:
                raise RuntimeError("configuration rejected: " + err)
        for d in daemons:
            d.start()
        threading.Thread(target=watch_loop, args=(daemons, stop_watch), daemon=True).start()
        for d in daemons:
            for _ in range(CLIENTS_PER_DAEMON):
                threads.append(threading.Thread(target=client_loop, args=(d,)))
        threads.append(threading.Thread(target=inval_loop, args=(daemons,)))
        threads.append(threading.Thread(target=scan_loop, args=(redis,)))
        for th in threads:
            th.start()

        run_phases(daemons, redis, upstream, proxy)

        S.begin_phase("final")
        S.stop_load = True
        for th in threads:
            th.join(NO_REPLY_S + 5)
        time.sleep(1.5)             # fills still running finish or time out
        if not scan_redis(redis.port, set()):
            S.violation("redis-records", "the final scan of Redis failed")
        stop_watch.set()
        for d in daemons:
            if d.down or d.proc.poll() is not None:
                S.violation("daemon-alive", "daemon %d is not running at the end" % d.idx)
                continue
            try:
                c = Conn(d.port, 5)
                r = c.cmd("PING")
                c.close()
            except (OSError, ConnectionError) as e:
                r = e
            if r != "+PONG":
                S.violation("daemon-alive", "daemon %d: PING answered %r" % (d.idx, r))
        for d in daemons:
            if d.proc.poll() is None:
                d.down = True
                d.proc.terminate()
                try:
                    rc = d.proc.wait(15)
                except subprocess.TimeoutExpired:
                    d.proc.kill()
                    rc = "no exit within 15 s"
                if rc != 0:
                    S.violation("daemon-alive", "daemon %d: exit status %s on SIGTERM; log tail:\n%s"
                                % (d.idx, rc, d.tail()))
        analyse_reads()
        dump_log(workdir)
    except RuntimeError as e:
        print("fault suite could not run: %s" % e)
        S.stop_load = True
        return 2
    finally:
        S.stop_load = True
        stop_watch.set()
        for d in daemons or []:
            if d.proc and d.proc.poll() is None:
                d.proc.kill()
                d.proc.wait()
        if upstream:
            upstream.stop()
        redis.stop()
    failed = summary()
    if failed == 0 and not os.environ.get("FAULTS_KEEP"):
        shutil.rmtree(workdir, ignore_errors=True)
    else:
        print("logs kept in %s" % workdir)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
