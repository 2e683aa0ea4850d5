# SPDX-License-Identifier: BSD-3-Clause
"""The fault suite's invariants (tests/faults/README.md): the settings every
daemon runs with, the phases and violations found, the book of upstream
reads and acknowledged invalidations, the checks of each answer and of the
records in Redis, the analysis of the reads, and the summary.  faults.py
(the set-up, the load and the standalone faults) and faulttopo.py (the
Sentinel and Cluster topologies) share this one state.  Standard library
only.
"""
import json
import os
import random
import re
import socket
import sys
import threading

from cstest import Conn, RespError
from faultproc import now


# ---- the configuration every daemon runs with ----
NDAEMONS = 3
CLIENTS_PER_DAEMON = 4
NKEYS = 50                      # p-001 .. p-050, served by `example-upstream -g 50`
IDS = ["p-%03d" % i for i in range(1, NKEYS + 1)]
NAMESPACES = {"h": "hash", "r": "raw"}
FORMATS = dict(NAMESPACES)      # every namespace the daemons serve (the reshard measurement adds one)
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
        self.scanned = 0            # records checked in Redis
        self.skipped = set()        # invariants not checked
        self.other_keys = set()
        self.excused = {}           # reason -> overlapping pairs not counted
        self.suspects = []          # stale answers and records, judged at the end (judge_stale)
        self.lost = {}              # failover -> [count, [examples]] stale only against a lost write
        self.infos = []             # figures for the summary

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

    def info(self, msg):
        with self.lock:
            self.infos.append(msg)
        log(msg)

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
#
# A failover can lose a write: Redis replicates asynchronously, and a DEL
# that the old primary acknowledged but had not sent to its replica is gone
# when the replica takes over (docs/protocol.md, "Writes revoke fills").
# The record it removed, or a fill's write it revoked, comes back, and
# answers look stale against it.  Each failover is booked as a loss: the
# invalidations acknowledged from LOSS_LAG_S before the old primary stopped
# replicating (killed, or its replica promoted) until the daemon that sent
# them moved to the new primary may have been lost.  A stale answer or
# record is not counted when every invalidation it is stale against is such
# a one, it was seen after the failover began and within LOST_VISIBLE_S of
# its end (what a lost DEL leaves lives no longer than a record's TTL);
# the summary counts it apart.  Nothing else is excused.
LOSS_LAG_S = 0.5
LOST_VISIBLE_S = UPSTREAM_TIMEOUT_MS / 1000.0 + 3 * 1.5 + 1.0   # a fill under way, then ttl_s 3 + 50% jitter


class Book:
    def __init__(self):
        self.lock = threading.Lock()
        self.ver = {}               # key -> last version handed out
        self.fetch_start = {}       # (key, ver) -> time the read arrived
        self.served = set()         # (key, ver) sent as a complete 200 for key
        self.reads = []             # dicts: d, key, ns, ver, start, end, fault, status
        self.invals = {}            # key -> [(t_send, t_ack, daemon)] acknowledged
        self.tried = {}             # key -> [(t_send, t_reply, daemon)] answered -TRYAGAIN: may have
                                    # removed some entries (and their locks), promised nothing
        self.windows = []           # (t0, t1, daemons or None, keys or None, why or None): Redis unreachable
        self.losses = []            # (t_from, until, keys or None, why): failovers, see above
        self.switches = []          # (t0, {daemon: when it followed}, keys or None): failovers

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

    def inval(self, keys, t_send, t_ack, d=None):
        with self.lock:
            for k in keys:
                self.invals.setdefault(k, []).append((t_send, t_ack, d))

    def inval_tried(self, keys, t_send, t_reply, d=None):
        with self.lock:
            for k in keys:
                self.tried.setdefault(k, []).append((t_send, t_reply, d))

    def window(self, t0, t1, daemons=None, keys=None, why=None):
        """Cross-daemon overlapping reads (of KEYS) starting in [t0, t1] are not counted."""
        with self.lock:
            self.windows.append((t0, t1, daemons, keys, why))

    def switch(self, t0, followed, keys=None):
        """A failover from T0 that each daemon followed at FOLLOWED[daemon]
        (for KEYS): see analyse_reads."""
        with self.lock:
            self.switches.append((t0, followed, keys))

    def loss(self, t_from, until, keys=None, why="a failover"):
        """Invalidations (of KEYS) acknowledged from T_FROM until UNTIL (a
        time, or {daemon: time}, when each daemon moved) may have been lost."""
        with self.lock:
            self.losses.append((t_from, until, keys, why))

    def lost_in(self, key, t_ack, d, t_obs):
        for t_from, until, keys, why in self.losses:
            u = until.get(d, max(until.values(), default=t_from)) if isinstance(until, dict) else until
            if (t_from <= t_ack <= u and t_from <= t_obs <= u + LOST_VISIBLE_S
                    and (keys is None or key in keys)):
                return why
        return None

    def open_reads(self):
        with self.lock:
            return [r for r in self.reads if r["end"] is None]

    def stale_against(self, key, ver, t_obs):
        """(read start, sent, acknowledged, None) of an invalidation that makes
        (key, ver) stale at t_obs; when only invalidations a failover may
        have lost do, one of them with that failover in place of None; or None."""
        lost = None
        with self.lock:
            fs = self.fetch_start.get((key, ver))
            if fs is None:
                return None
            for t_send, t_ack, d in self.invals.get(key, ()):
                if t_send > fs and t_ack < t_obs:
                    why = self.lost_in(key, t_ack, d, t_obs)
                    if why is None:
                        return (fs, t_send, t_ack, None)
                    lost = lost or (fs, t_send, t_ack, why)
        return lost


B = Book()


def check_record(key, fields, where, t_obs=None, label=None):
    """Check one record (dict of str -> str) of key, answered (where "reply")
    or stored ("redis", under LABEL); returns a problem or None."""
    ns, rid = key.split(":", 1)
    if FORMATS[ns] == "raw" and where == "redis":
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
    # Stale against an invalidation: judged once the run is over, when every
    # failover's loss is booked (judge_stale).
    if t_obs is not None and B.stale_against(key, ver, t_obs):
        with S.lock:
            S.suspects.append((where, label or key, key, ver, t_obs))
    return None


def judge_stale():
    """Each stale answer or record seen: a violation, unless only a failover's
    lost invalidation makes it stale (counted apart)."""
    for where, label, key, ver, t_obs in S.suspects:
        st = B.stale_against(key, ver, t_obs)
        if st is None:
            continue
        if where == "redis":
            inv = "redis-records"
            msg = ("%s stale write-back: version %d read at t=%.2fs, invalidated (sent t=%.2fs, "
                   "acknowledged t=%.2fs) and still stored at t=%.2fs"
                   % (label, ver, S.rel(st[0]), S.rel(st[1]), S.rel(st[2]), S.rel(t_obs)))
        else:
            inv = "answer-after-invalidation"
            msg = ("%s: stale answer: version %d read at t=%.2fs, invalidated (sent t=%.2fs, "
                   "acknowledged t=%.2fs), answered to a read sent at t=%.2fs"
                   % (label, ver, S.rel(st[0]), S.rel(st[1]), S.rel(st[2]), S.rel(t_obs)))
        if st[3] is None:
            S.violation(inv, msg, t_obs)
            continue
        ent = S.lost.setdefault(st[3], [0, []])
        ent[0] += 1
        if len(ent[1]) < 2:
            ent[1].append("t=%.1fs %s %s" % (S.rel(t_obs), inv, msg))


# ---- answers and invalidations ----
def check_value(key, val, t_send, d=None):
    """Check one reply value for key, answered by daemon D (a record, an
    allowed error or a problem); True for a record that passes."""
    if isinstance(val, RespError):
        if val.startswith("-UPSTREAM") or val.startswith("-TRYAGAIN"):
            S.replies["error"] += 1
            return False
        S.violation("reply-bound", "%s: unexpected error reply %s" % (key, val[:81]))
        return False
    ns = key.split(":", 1)[0]
    if FORMATS[ns] == "hash":
        if not isinstance(val, list):
            S.violation("own-record", "%s: HGETALL answered %r" % (key, val))
            return False
        if not val:
            S.violation("own-record", "%s: answered not-found for a key the upstream has" % key)
            return False
        fields = {val[i].decode("latin-1"): val[i + 1].decode("latin-1") for i in range(0, len(val) - 1, 2)}
    else:
        if val is None:
            S.violation("own-record", "%s: answered not-found for a key the upstream has" % key)
            return False
        if not isinstance(val, bytes):
            S.violation("own-record", "%s: GET answered %r" % (key, val))
            return False
        fields = val.decode("latin-1")
    # Sent after an acknowledged invalidation of the key: the answer must
    # come from an upstream read that began after the invalidation was sent
    # (judged at the end, judge_stale).
    p = check_record(key, fields, "reply", t_send, key if d is None else "%s (daemon %d)" % (key, d.idx))
    if p:
        S.violation("own-record", "%s: reply %s" % (key, p))
        return False
    S.replies["record"] += 1
    return True


def request(d, conn, words, keys, outcome=None):
    """Send one command, check its reply; returns False when conn is unusable.
    OUTCOME, a list, is given (time sent, seconds to the reply, every value
    a record that passes, the reply when not) of an answered request."""
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
    ok = False
    if words[0] == "MGET":
        if isinstance(val, RespError):
            check_value(keys[0], val, t, d)
        elif not isinstance(val, list) or len(val) != len(keys):
            S.violation("own-record", "MGET of %d keys answered %r" % (len(keys), str(val)[:80]))
        else:
            ok = all([check_value(k, v, t, d) for k, v in zip(keys, val)])
    else:
        ok = check_value(keys[0], val, t, d)
    if outcome is not None:
        outcome.append((t, dt, ok, None if ok else str(val)[:60]))
    return True


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
        B.inval(keys, t, t_ack, d.idx)
    elif isinstance(val, RespError) and val.startswith("-TRYAGAIN"):
        # "some entries may remain": some may be gone, with their fills' locks.
        B.inval_tried(keys, t, t_ack, d.idx)
    else:
        S.violation("reply-bound", "daemon %d: %s answered %r" % (d.idx, " ".join(words), val))


RECORD_KEY = re.compile(r"^%s([^:{}]+):\{(.*)\}$" % re.escape(PREFIX))


# A cluster node answers these for a key whose slot is moving or has moved.
REDIRECTED = ("-ASK ", "-MOVED ", "-TRYAGAIN", "-CLUSTERDOWN")


def scan_redis(port, seen, phase_t=None, cluster=False, match=(PREFIX + "*",)):
    """Check every record under the prefix (the keys that MATCH) on the
    Redis at PORT, a cluster node when CLUSTER; returns False if it did not
    answer."""
    try:
        c = Conn(port, 1.0)
    except OSError:
        return False
    try:
        names = []
        for pattern in match:
            cursor = b"0"
            while True:
                r = c.cmd("SCAN", cursor, "MATCH", pattern, "COUNT", "1000")
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
            if cluster:             # a key of an importing slot is read there after ASKING
                c.cmd("ASKING")
            val = c.cmd("HGETALL", name)
            if isinstance(val, RespError) and cluster and val.startswith(REDIRECTED):
                continue            # migrated, or its node failing over, in between
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
                p = check_record(key, fields, "redis", t_req, name)
                S.scanned += 1
            if p and (name, p) not in seen:
                seen.add((name, p))
                S.violation("redis-records", "%s %s" % (name, p), phase_t)
        return True
    except (OSError, ConnectionError, ValueError):
        return False
    finally:
        c.close()


# ---- analysis of the proxy's read log ----
def dump_log(workdir):
    """The upstream reads and invalidations, for a look after a failure."""
    with B.lock, open(os.path.join(workdir, "reads.log"), "w") as f:
        for r in B.reads:
            f.write("%8.3f %8s daemon=%d %s v%d %s\n" % (
                S.rel(r["start"]), "%.3f" % S.rel(r["end"]) if r["end"] else "open",
                r["d"], r["key"], r["ver"], r["status"]))
        for k, lst in sorted(B.invals.items()):
            for t_send, t_ack, d in lst:
                f.write("%8.3f %8.3f inval %s daemon=%s\n" % (S.rel(t_send), S.rel(t_ack), k, d))
        for k, lst in sorted(B.tried.items()):
            for t_send, t_reply, d in lst:
                f.write("%8.3f %8.3f inval-tryagain %s daemon=%s\n" % (S.rel(t_send), S.rel(t_reply), k, d))


def analyse_reads():
    with B.lock:
        reads = [dict(r) for r in B.reads]
        windows = list(B.windows)
        switches = list(B.switches)
        invals = {k: list(v) for k, v in B.invals.items()}
        for k, v in B.tried.items():
            invals.setdefault(k, []).extend(v)     # for the overlap excuse alone
    end_t = now()
    for r in reads:
        if r["end"] is None:
            r["end"] = end_t
    lock_s = LOCK_TTL_MS / 1000.0

    def excused(a, b):
        # A DEL/INVALIDATE of the key between the two reads removed a's lock
        # (and detached a's in-process flight): b may start its own fill.
        for t_send, t_ack, _ in invals.get(a["key"], ()):
            if t_send < b["start"] and t_ack > a["start"] - lock_s:
                return "after a DEL/INVALIDATE of the key"
        # Redis unreachable or restarted empty: one read per daemon is allowed
        # (docs/design.md section 6), so only reads from different daemons are excused.
        if a["d"] != b["d"]:
            for t0, t1, ds, keys, why in windows:
                if (t0 <= b["start"] <= t1 and (ds is None or a["d"] in ds or b["d"] in ds)
                        and (keys is None or a["key"] in keys)):
                    return why or "from different daemons while Redis was unreachable or a daemon restarting"
        # A failover: a fill that began before the daemon followed it holds
        # no lock on the new primary (it fetched without one while its
        # Redis commands failed, up to command_timeout_ms after, or its
        # lock was on the old primary), and a read that finds Redis again
        # may not join a fetch that holds no lock (docs/design.md section
        # 7): it fills anew, in the same daemon too.
        else:
            slack = COMMAND_TIMEOUT_MS / 1000.0 + 0.2
            for t0, followed, keys in switches:
                u = followed.get(a["d"])
                if (u is not None and t0 <= a["start"] <= u + slack
                        and (keys is None or a["key"] in keys)):
                    return ("from one daemon across a failover: the first began before it followed "
                            "(no lock on the new primary), the second found Redis again")
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
        for ns in FORMATS:
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
    for why, (n, ex) in sorted(S.lost.items()):
        print("info: %d stale answer(s) or record(s) not counted: stale only against invalidations "
              "acknowledged within %.1f s before %s or before the daemon that sent them moved to the "
              "new primary, which Redis may lose" % (n, LOSS_LAG_S, why))
        for e in ex:
            print("        " + e)
    for i in S.infos:
        print("info: " + i)
    print("info: %d requests answered (%d records checked, %d -UPSTREAM/-TRYAGAIN); %d upstream reads; "
          "%d records checked in Redis" % (S.requests, S.replies["record"], S.replies["error"], len(B.reads),
                                           S.scanned))
    checked = len(INVARIANTS) - len(S.skipped)
    print("faults: %d passed, %d failed" % (checked - failed, failed))
    return failed
