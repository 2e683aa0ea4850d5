#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-3-Clause
"""Fault suite for cachasided: three daemons, one redis-server (or, with
--topology, a Sentinel or Cluster set-up), the example upstream behind a
fault-injecting HTTP proxy, steady load, faults in sequence, invariants
checked throughout.  See tests/faults/README.md; the processes and the
proxy are in faultproc.py, the Sentinel and Cluster set-ups in
faulttopo.py, the invariants in faultcheck.py, the reshard measurement in
faultreshard.py.

Usage: faults.py [--topology standalone|sentinel|cluster] [--tls] [--reshard-keys N]
Environment: CACHASIDED_BIN, CACHASIDED_UPSTREAM_BIN, REDIS_SERVER (or
REDIS_SERVER_BIN).  Exit 0 when every invariant held, 1 otherwise.

Only the Python standard library; loopback only; every process is started
and stopped here.
"""
import argparse
import fnmatch
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

sys.dont_write_bytecode = True     # keep the source tree clean
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [HERE, os.path.dirname(HERE)]       # faultproc.py, and tests/cstest.py
from cstest import Conn, TestCA, free_port  # noqa: E402
from faultproc import Proxy, Redis, Upstream, now, wait_ping  # noqa: E402
from faultcheck import (B, BASE_LATENCY_MS, CLIENTS_PER_DAEMON, COMMAND_TIMEOUT_MS, FORMATS, IDS,  # noqa: E402
                        LOCK_TTL_MS, LOSS_LAG_S, MAX_FETCHES, NAMESPACES, NDAEMONS, NKEYS,
                        NO_REPLY_S, PREFIX, REDIS_RECOVERY_S, S, UPSTREAM_TIMEOUT_MS,
                        analyse_reads, dump_log, invalidate, judge_stale, log, request, scan_redis,
                        summary)
from faulttopo import (ClusterSet, SentinelSet, counters_grew, daemon_counters, linked, rcmd, role,  # noqa: E402
                       slot_of_id, start_node, wait_daemons, wait_until)
from faultreshard import Reshard  # noqa: E402


# ---- processes ----
class Daemon:
    """REDIS_LINES, when given, say how to find Redis in place of host and
    port RPORT (a Sentinel or Cluster set-up)."""
    def __init__(self, idx, workdir, binary, rport, pport, redis_lines=None):
        self.idx = idx
        self.bin = binary
        self.port = free_port()
        self.conf = os.path.join(workdir, "d%d.ini" % idx)
        self.logpath = os.path.join(workdir, "d%d.log" % idx)
        self.rport, self.pport = rport, pport
        self.redis_lines = redis_lines or ["host = 127.0.0.1", "port = %d" % rport]
        if Redis.tls:
            self.redis_lines = self.redis_lines + ["%s = %s" % kv for kv in Redis.tls.daemon_keys().items()]
        self.proc = None
        self.down = True            # killed or restarting on purpose
        self.gen = 0
        self.ttl = 2
        self.write_conf()

    def write_conf(self, max_fetches=True):
        lines = [
            "[server]", "listen = 127.0.0.1:%d" % self.port, "admin_listen =",
            "log_level = %s" % os.environ.get("FAULTS_LOG_LEVEL", "notice"), "shutdown_grace_ms = 3000",
            "[redis]"] + self.redis_lines + ["key_prefix = %s" % PREFIX,
            "connect_timeout_ms = 1000", "command_timeout_ms = %d" % COMMAND_TIMEOUT_MS,
            "[cache]", "ttl_s = %d" % self.ttl, "ttl_jitter_pct = 50", "negative_ttl_s = 1",
            "lock_ttl_ms = %d" % LOCK_TTL_MS, "lock_poll_ms = 50",
            "upstream_timeout_ms = %d" % UPSTREAM_TIMEOUT_MS, "upstream_connections = 4",
        ]
        if max_fetches and "upstream-max-fetches" not in S.skipped:
            lines.append("max_upstream_fetches = %d" % MAX_FETCHES)
        for ns, fmt in FORMATS.items():
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


def scan_loop(ports, cluster, match):
    """Scan the Redis servers that hold the records (PORTS() names them)."""
    seen = set()
    while not S.stop_load:
        for port in ports():
            scan_redis(port, seen, cluster=cluster, match=match)
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


# ---- Sentinel and Cluster faults (faulttopo.py does the Redis side) ----
#
# What each failover means for the invariants: while a primary is down or
# being replaced, each daemon reads the upstream on its own (its Redis
# command fails, or the lock it took on the old primary is not on the new
# one), so reads from different daemons may overlap (B.window, as when
# Redis is unreachable); and an invalidation that the old primary
# acknowledged shortly before it stopped replicating may be lost (B.loss,
# see faultcheck.py).  A slot in migration is neither: its guarantees hold.
def load_keys(slots):
    """The keys of the load whose slot is in SLOTS."""
    return {"%s:%s" % (ns, rid) for ns in NAMESPACES for rid in IDS if slot_of_id(rid) in slots}


def followed(daemons, seen, t0, what):
    """Say when each daemon followed WHAT; returns the last of those times
    (now, for a daemon that never did)."""
    late = [d.idx for d in daemons if not d.down and d.idx not in seen]
    if late:
        S.note("daemon(s) %s did not follow %s" % (late, what))
    S.info("%s: daemons followed after %s" % (what, ", ".join(
        "%d %.2f s" % (i, t - t0) for i, t in sorted(seen.items()))))
    return now() if late or not seen else max(seen.values())


def ask_failover(port, *words):
    """WORDS on PORT until it answers +OK (a sentinel that has not yet seen
    the replica as fit, a replica still syncing, refuse it for a while)."""
    end = now() + 20
    while True:
        t = now()
        r = rcmd(port, *words)
        if r == "+OK":
            return t
        if now() > end:
            raise RuntimeError("%s answered %r" % (" ".join(words), r))
        time.sleep(0.2)


def on_primary(port):
    want = "127.0.0.1:%d" % port
    return lambda st: st.get("redis_primary") == want and st.get("redis_state") == "up"


def fault_sentinel_failover(daemons, topo):
    old = topo.primary()
    new = topo.other(old)
    t0 = ask_failover(topo.sports[0], "SENTINEL", "FAILOVER", topo.MASTER)
    t_up = wait_until(lambda: role(new.port) == "master", 20, "the sentinels never promoted the replica")
    seen = wait_daemons(daemons, on_primary(new.port), 20)
    t_end = followed(daemons, seen, t_up, "SENTINEL FAILOVER (replica promoted %.2f s after it was asked)"
                     % (t_up - t0))
    # Until a daemon hears +switch-master it writes to the old primary,
    # which is no longer replicated: each daemon's writes until it moved.
    until = {d.idx: seen.get(d.idx, t_end) for d in daemons}
    B.loss(t_up - LOSS_LAG_S, until, None, "a SENTINEL FAILOVER")
    B.window(t0, t_end + REDIS_RECOVERY_S)
    B.switch(t0, until)
    wait_until(lambda: linked(old.port), 60, "the old primary never became a replica", 0.1)
    log("the old primary is a replica again, %.1f s after the switch" % (now() - t_up))


def fault_sentinel_kill(daemons, topo):
    old = topo.primary()
    new = topo.other(old)
    wait_until(lambda: linked(new.port), 20, "the replica is not linked")
    t_kill = now()
    old.kill()
    log("killed the primary (port %d)" % old.port)
    seen = wait_daemons(daemons, on_primary(new.port), 40)
    t_end = followed(daemons, seen, t_kill, "SIGKILL of the primary")
    B.loss(t_kill - LOSS_LAG_S, t_kill, None, "the primary's SIGKILL")
    B.window(t_kill, t_end + REDIS_RECOVERY_S)
    B.switch(t_kill, {d.idx: seen.get(d.idx, t_end) for d in daemons})
    old.replicaof = ("127.0.0.1", new.port)
    t_back = now()
    start_node(old)
    wait_until(lambda: linked(old.port), 30, "the killed primary never came back as a replica", 0.1)
    # Sentinels sometimes promote the node that just came back (seen in CI:
    # a second +switch-master 2 s later). Writes the new primary acknowledged
    # after that node began its sync may not have reached it: Redis's own
    # loss, counted apart like the first one's.
    end = now() + 4
    while now() < end:
        again = topo.primary()
        if again is not None and again is not new:
            t_again = now()
            log("the sentinels switched again, to port %d" % again.port)
            seen = wait_daemons(daemons, on_primary(again.port), 40)
            t_end = followed(daemons, seen, t_again, "a second switch after the primary came back")
            B.loss(t_back, {d.idx: seen.get(d.idx, t_end) for d in daemons}, None,
                   "a second switch, to the primary that came back")
            B.window(t_again, t_end + REDIS_RECOVERY_S)
            B.switch(t_again, {d.idx: seen.get(d.idx, t_end) for d in daemons})
            break
        time.sleep(0.05)


def sentinel_phases(daemons, topo, rounds=3):
    S.begin_phase("baseline")
    time.sleep(5)
    for r in range(1, rounds + 1):
        S.begin_phase("sentinel-failover-%d" % r)
        fault_sentinel_failover(daemons, topo)
        time.sleep(3)
        S.begin_phase("primary-kill-%d" % r)
        fault_sentinel_kill(daemons, topo)
        time.sleep(4)


def cluster_follows(new, old):
    """A daemon's STATS name NEW among three primaries up, and not OLD."""
    def pred(st):
        topo = st.get("redis_cluster_topology", "")
        return ("127.0.0.1:%d up" % new in topo and "127.0.0.1:%d " % old not in topo
                and st.get("redis_cluster_primaries_up") == "3")
    return pred


def fault_cluster_failover(daemons, topo, kill):
    """CLUSTER FAILOVER on a replica (the primary hands over once the replica
    has all its writes: nothing is lost), or SIGKILL of its primary."""
    smap = topo.slot_map()
    old = topo.node(random.choice(topo.primaries(smap)))
    new = topo.replica_of(old.port)
    keys = load_keys(topo.slots_of(old.port, smap))
    wait_until(lambda: linked(new.port), 20, "the replica is not linked")
    if kill:
        t0 = now()
        old.kill()
        log("killed the primary on port %d (%d keys of the load)" % (old.port, len(keys)))
    else:
        t0 = ask_failover(new.port, "CLUSTER", "FAILOVER")
    t_up = wait_until(lambda: role(new.port) == "master", 30, "the replica was never promoted")
    seen = wait_daemons(daemons, cluster_follows(new.port, old.port), 30)
    t_end = followed(daemons, seen, t_up, "%s (replica promoted %.2f s after)"
                     % ("SIGKILL of a primary" if kill else "CLUSTER FAILOVER", t_up - t0))
    if kill:
        B.loss(t0 - LOSS_LAG_S, t0, keys, "a primary's SIGKILL")
    B.window(t0, t_end + REDIS_RECOVERY_S, keys=keys)
    B.switch(t0, {d.idx: seen.get(d.idx, t_end) for d in daemons}, keys)
    if kill:
        start_node(old)             # with its nodes file: it rejoins as a replica
    wait_until(lambda: linked(old.port), 60, "the old primary never became a replica", 0.1)


def fault_held_migration(daemons, topo, nids, hold):
    """Slots of NIDS ids of the load, from the primary with most of them to
    another one, held in migration HOLD seconds: one key of each slot
    MIGRATEd every half second (the load re-creates the others on the
    importing node, through ASK), then the rest, then SETSLOT NODE."""
    smap = topo.slot_map()
    owned = {p: [rid for rid in IDS if topo.owner(slot_of_id(rid), smap) == p] for p in topo.primaries(smap)}
    src = max(owned, key=lambda p: len(owned[p]))
    dst = random.choice([p for p in owned if p != src])
    slots = sorted({slot_of_id(rid) for rid in owned[src][:nids]})
    log("slots %s (%d keys of the load) migrate from port %d to %d" % (slots, len(load_keys(slots)), src, dst))
    c0 = daemon_counters(daemons)
    topo.begin_migration(slots, src, dst)
    t0, moved = now(), 0
    while now() < t0 + hold:
        for slot in slots:
            moved += topo.move_keys(slot, src, dst, 1)
        time.sleep(0.5)
    for slot in slots:
        while True:
            n = topo.move_keys(slot, src, dst, 100)
            moved += n
            if n == 0:
                break
    topo.end_migration(slots, src, dst)
    S.info("held migration: %d slots (%d keys of the load) in migration %.1f s, %d keys MIGRATEd; "
           "the daemons' counters: %s" % (len(slots), len(load_keys(slots)), now() - t0, moved,
                                           counters_grew(c0, daemon_counters(daemons))))


def cluster_phases(daemons, topo, rounds=3):
    S.begin_phase("baseline")
    time.sleep(5)
    for r in range(1, rounds + 1):
        S.begin_phase("cluster-failover-%d" % r)
        fault_cluster_failover(daemons, topo, kill=False)
        time.sleep(3)
        S.begin_phase("held-migration-%d" % r)
        fault_held_migration(daemons, topo, 12, 8.0)
        time.sleep(3)
        S.begin_phase("primary-kill-%d" % r)
        fault_cluster_failover(daemons, topo, kill=True)
        time.sleep(4)


def main():
    ap = argparse.ArgumentParser(description="cachasided's fault suite (tests/faults/README.md)")
    ap.add_argument("--topology", choices=("standalone", "sentinel", "cluster"), default="standalone",
                    help="one redis-server (the default), a primary with a replica and 3 sentinels, "
                    "or 3 primaries with a replica each")
    ap.add_argument("--tls", action="store_true",
                    help="Redis (and the sentinels) on TLS ports only, the daemons with tls = yes")
    ap.add_argument("--reshard-keys", type=int, default=0, metavar="N",
                    help="cluster: at the end, measure a reshard of slots holding N cached records")
    args = ap.parse_args()
    if args.reshard_keys and args.topology != "cluster":
        ap.error("--reshard-keys needs --topology cluster")
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
    if args.topology != "standalone" or args.tls:
        log("topology %s%s" % (args.topology, ", over TLS" if args.tls else ""))
    redis = topo = None
    if args.topology == "standalone":
        redis = Redis(rbin, workdir)
        ports = lambda: [redis.port]     # noqa: E731
    else:
        topo = (SentinelSet if args.topology == "sentinel" else ClusterSet)(rbin, workdir)
        ports = topo.data_ports
    cluster = args.topology == "cluster"
    # With the reshard's records beside them, the scanner asks for the load's alone.
    match = [PREFIX + ns + ":*" for ns in NAMESPACES] if args.reshard_keys else [PREFIX + "*"]
    upstream = daemons = reshard = None
    stop_watch = threading.Event()
    threads = []
    try:
        if args.tls:
            Redis.tls = TestCA(workdir)
        (redis or topo).start()
        upstream = Upstream(ubin, workdir, NKEYS)
        upstream.control("PUT", "/_latency", str(BASE_LATENCY_MS))
        proxy = Proxy(upstream.port, NDAEMONS, IDS, B)
        if args.reshard_keys:
            reshard = Reshard(topo, proxy, args.reshard_keys)
        daemons = [Daemon(i, workdir, dbin, redis and redis.port, proxy.ports[i], topo and topo.redis_conf())
                   for i in range(NDAEMONS)]
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
        threads.append(threading.Thread(target=scan_loop, args=(ports, cluster, match)))
        for th in threads:
            th.start()

        if redis:
            run_phases(daemons, redis, upstream, proxy)
        elif not cluster:
            sentinel_phases(daemons, topo)
        else:
            cluster_phases(daemons, topo)
            if args.reshard_keys:
                S.begin_phase("reshard")
                reshard.run(daemons)

        S.begin_phase("final")
        S.stop_load = True
        for th in threads:
            th.join(NO_REPLY_S + 5)
        time.sleep(1.5)             # fills still running finish or time out
        if not ports() or not all([scan_redis(p, set(), cluster=cluster, match=match) for p in ports()]):
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
        judge_stale()
        if reshard:
            reshard.report()
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
        (redis or topo).stop()
    failed = summary()
    if failed == 0 and not os.environ.get("FAULTS_KEEP"):
        shutil.rmtree(workdir, ignore_errors=True)
    else:
        print("logs kept in %s" % workdir)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
