# SPDX-License-Identifier: BSD-3-Clause
"""The Sentinel and Cluster set-ups of the fault suite (tests/faults/README.md):
their processes, hash slots, and the Redis side of their faults (a
failover, a slot moved key by key).  Each operation says when things
happened; faults.py books what that means for the invariants.  Standard
library only; every process is started and stopped here, on loopback.
"""
import os
import signal
import subprocess
import time

from cstest import Conn, RespError, free_port
from faultproc import Redis, now, wait_ping

SLOTS = 16384


# ---- hash slots: CRC16/XMODEM of the hash tag, as Redis Cluster (src/redis/rslot.c) ----
def _crc16_table():
    table = []
    for i in range(256):
        crc = i << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else crc << 1
        table.append(crc & 0xFFFF)
    return table


CRC16_TABLE = _crc16_table()


def crc16(data):
    crc = 0
    for b in data:
        crc = ((crc << 8) & 0xFFFF) ^ CRC16_TABLE[((crc >> 8) ^ b) & 0xFF]
    return crc


def slot_of_id(rid):
    """The slot of every key of an id: the record <prefix><ns>:{<id>} and its
    channel carry the id as their hash tag (ids here have no braces)."""
    return crc16(rid.encode()) % SLOTS


# ---- one-shot commands and polling ----
def rcmd(port, *words, timeout=3.0):
    """One command on a fresh connection: its reply, or None when PORT does
    not answer."""
    try:
        c = Conn(port, timeout)
    except OSError:
        return None
    try:
        return c.cmd(*words)
    except (OSError, ConnectionError):
        return None
    finally:
        c.close()


def fields(text):
    """'name:value' lines (INFO, a daemon's STATS) as a dict."""
    if not isinstance(text, bytes) or isinstance(text, RespError):
        return {}
    out = {}
    for line in text.decode("latin-1").splitlines():
        name, sep, value = line.partition(":")
        if sep:
            out[name] = value
    return out


def info(port, section):
    return fields(rcmd(port, "INFO", section))


def role(port):
    return info(port, "replication").get("role")


def linked(port):
    """A replica whose link to its primary is up."""
    i = info(port, "replication")
    return i.get("role") == "slave" and i.get("master_link_status") == "up"


def wait_until(pred, timeout, what, step=0.01):
    """The time pred() first held; RuntimeError after TIMEOUT seconds."""
    end = now() + timeout
    while True:
        if pred():
            return now()
        if now() > end:
            raise RuntimeError(what)
        time.sleep(step)


def wait_daemons(daemons, pred, timeout):
    """When each running daemon's STATS first satisfied pred: {idx: time};
    a daemon that never did within TIMEOUT is left out."""
    seen, end = {}, now() + timeout
    while now() < end:
        for d in daemons:
            if d.idx not in seen and not d.down and pred(fields(rcmd(d.port, "STATS", timeout=1.0))):
                seen[d.idx] = now()
        if all(d.idx in seen or d.down for d in daemons):
            break
        time.sleep(0.02)
    return seen


COUNTERS = ("redis_errors", "redis_cluster_ask", "redis_cluster_moved", "redis_cluster_retries")


def daemon_counters(daemons):
    """The COUNTERS of the daemons' STATS, added up."""
    tot = dict.fromkeys(COUNTERS, 0)
    for d in daemons:
        st = fields(rcmd(d.port, "STATS"))
        for n in COUNTERS:
            tot[n] += int(st.get(n, 0))
    return tot


def counters_grew(c0, c1):
    return ", ".join("%s +%d" % (n, c1[n] - c0[n]) for n in COUNTERS)


def start_node(node, tries=3):
    """Start a redis-server whose ports were picked by free_port(); when
    it cannot (another process took a port in between), pick again."""
    for attempt in range(tries):
        try:
            node.start()
            return
        except RuntimeError:
            if node.alive():
                node.proc.kill()
                node.proc.wait()
            if attempt == tries - 1:
                raise
            node.repick()


def stop_proc(proc):
    if proc and proc.poll() is None:
        proc.send_signal(signal.SIGCONT)
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class Node(Redis):
    """A redis-server of a set-up: its own RDB file (a replica's full sync
    writes one) and, in a cluster, its cluster bus port and nodes file."""
    picked = set()                  # ports handed to nodes: free_port() may name one twice

    def __init__(self, binary, workdir, name, cluster=False):
        super().__init__(binary, workdir, name)
        self.workdir, self.name, self.cluster = workdir, name, cluster
        self.repick()

    @classmethod
    def pick(cls):
        while True:
            p = free_port()
            if p not in cls.picked:
                cls.picked.add(p)
                return p

    def repick(self):
        self.port = self.pick()
        self.bus = self.pick() if self.cluster else None
        self.extra = ["--dir", self.workdir, "--dbfilename", "dump-%s.rdb" % self.name,
                      "--repl-diskless-sync-delay", "0"]
        if self.cluster:
            self.extra += ["--cluster-enabled", "yes", "--cluster-config-file", "nodes-%s.conf" % self.name,
                           "--cluster-port", str(self.bus), "--cluster-node-timeout", "1500",
                           "--cluster-require-full-coverage", "no", "--cluster-replica-validity-factor", "0"]

    def start(self):
        super().start()
        # Another server on the port would have answered the PING.
        pid = fields(rcmd(self.port, "INFO", "server")).get("process_id")
        if pid != str(self.proc.pid):
            raise RuntimeError("port %d is another server's" % self.port)

    def alive(self):
        return self.proc is not None and self.proc.poll() is None


# ---- Sentinel: a primary, its replica, three sentinels (as tests/test_sentinel.c) ----
class SentinelSet:
    MASTER = "faults"
    NSENTINELS = 3

    def __init__(self, binary, workdir):
        self.bin, self.workdir = binary, workdir
        self.nodes = [Node(binary, workdir, "redis-a"), Node(binary, workdir, "redis-b")]
        self.sports, self.sprocs = [], []

    def start(self):
        a, b = self.nodes
        start_node(a)
        b.replicaof = ("127.0.0.1", a.port)
        start_node(b)
        wait_until(lambda: linked(b.port), 15, "the replica never linked to its primary")
        for i in range(self.NSENTINELS):
            self.start_sentinel(i)
        wait_until(self.settled, 30, "the sentinels never saw the replica and each other", 0.1)

    def start_sentinel(self, i):
        port = free_port()
        conf = os.path.join(self.workdir, "sentinel-%d.conf" % i)
        with open(conf, "w") as f:
            if Redis.tls:
                Redis.tls.register(port)
                f.write(Redis.tls.conf_lines(port))
            else:
                f.write("port %d\n" % port)
            f.write("bind 127.0.0.1\ndir %s\n"
                    "sentinel monitor %s 127.0.0.1 %d 2\n"
                    "sentinel down-after-milliseconds %s 1000\n"
                    "sentinel failover-timeout %s 6000\n"
                    "sentinel parallel-syncs %s 1\n"
                    % (self.workdir, self.MASTER, self.nodes[0].port, self.MASTER, self.MASTER, self.MASTER))
        logf = open(os.path.join(self.workdir, "sentinel-%d.log" % i), "a")
        proc = subprocess.Popen([self.bin, conf, "--sentinel"], stdin=subprocess.DEVNULL, stdout=logf, stderr=logf)
        logf.close()
        self.sports.append(port)
        self.sprocs.append(proc)
        if not wait_ping(port, 10):
            raise RuntimeError("sentinel %d did not start" % i)

    def settled(self):
        for port in self.sports:
            r = rcmd(port, "SENTINEL", "MASTER", self.MASTER)
            if not isinstance(r, list):
                return False
            m = {r[i].decode(): r[i + 1].decode() for i in range(0, len(r) - 1, 2)}
            if m.get("num-slaves") != "1" or m.get("num-other-sentinels") != str(self.NSENTINELS - 1):
                return False
        return True

    def redis_conf(self):
        return ["mode = sentinel", "master_name = %s" % self.MASTER,
                "sentinels = %s" % ", ".join("127.0.0.1:%d" % p for p in self.sports)]

    def primary(self):
        """The node the sentinels name (the first that answers), or None."""
        for port in self.sports:
            r = rcmd(port, "SENTINEL", "get-master-addr-by-name", self.MASTER, timeout=1.0)
            if isinstance(r, list) and len(r) == 2:
                for n in self.nodes:
                    if n.port == int(r[1]):
                        return n
        return None

    def other(self, node):
        return self.nodes[1] if node is self.nodes[0] else self.nodes[0]

    def data_ports(self):
        """Where the daemons' records are: the primary the sentinels name."""
        p = self.primary()
        return [p.port] if p else []

    def stop(self):
        for proc in self.sprocs:
            stop_proc(proc)
        for n in self.nodes:
            n.stop()


# ---- Cluster: three primaries with a replica each (as tests/test_cluster.c) ----
class ClusterSet:
    NPRIMARIES = 3

    def __init__(self, binary, workdir):
        self.nodes = [Node(binary, workdir, "node-%d" % i, cluster=True) for i in range(2 * self.NPRIMARIES)]
        self.ids = {}

    def start(self):
        """Built by hand (what redis-cli --cluster create does): distinct
        config epochs, MEET, the slots in three ranges, then REPLICATE."""
        for n in self.nodes:
            start_node(n)
        for i, n in enumerate(self.nodes):
            rcmd(n.port, "CLUSTER", "SET-CONFIG-EPOCH", str(i + 1))
            self.ids[n.port] = rcmd(n.port, "CLUSTER", "MYID").decode()
        first = self.nodes[0]
        for n in self.nodes[1:]:
            if rcmd(first.port, "CLUSTER", "MEET", "127.0.0.1", str(n.port), str(n.bus)) != "+OK":
                raise RuntimeError("CLUSTER MEET %d failed" % n.port)
        for i in range(self.NPRIMARIES):
            lo, hi = SLOTS * i // self.NPRIMARIES, SLOTS * (i + 1) // self.NPRIMARIES - 1
            if rcmd(self.nodes[i].port, "CLUSTER", "ADDSLOTSRANGE", str(lo), str(hi)) != "+OK":
                raise RuntimeError("CLUSTER ADDSLOTSRANGE on %d failed" % self.nodes[i].port)

        def met():
            for n in self.nodes:
                r = rcmd(n.port, "CLUSTER", "NODES")
                if not isinstance(r, bytes) or r.count(b"connected") != len(self.nodes) or b"handshake" in r:
                    return False
            return True
        wait_until(met, 30, "the cluster nodes never all met", 0.1)
        for i in range(self.NPRIMARIES, len(self.nodes)):
            primary = self.nodes[i - self.NPRIMARIES]
            r = rcmd(self.nodes[i].port, "CLUSTER", "REPLICATE", self.ids[primary.port])
            if r != "+OK":
                raise RuntimeError("CLUSTER REPLICATE on %d: %r" % (self.nodes[i].port, r))
        wait_until(lambda: all(fields(rcmd(n.port, "CLUSTER", "INFO")).get("cluster_state") == "ok"
                               for n in self.nodes),
                   30, "the cluster never came up", 0.1)
        for n in self.nodes[self.NPRIMARIES:]:
            wait_until(lambda: linked(n.port), 30, "replica %d never synced" % n.port, 0.05)
        for rid in ("p-001", "p-050", "m-0000001", "123456789"):
            want = rcmd(first.port, "CLUSTER", "KEYSLOT", "cache:h:{%s}" % rid)
            if want != slot_of_id(rid):
                raise RuntimeError("slot of %s: CLUSTER KEYSLOT says %r, the suite %d" % (rid, want, slot_of_id(rid)))

    def redis_conf(self):
        return ["mode = cluster", "cluster_refresh_s = 5",
                "nodes = %s" % ", ".join("127.0.0.1:%d" % n.port for n in self.nodes)]

    def node(self, port):
        for n in self.nodes:
            if n.port == port:
                return n
        return None

    def slot_map(self):
        """[(first, last, primary port, [replica ports])] as a live node sees
        it (CLUSTER SLOTS)."""
        for n in self.nodes:
            if not n.alive():
                continue
            r = rcmd(n.port, "CLUSTER", "SLOTS", timeout=1.0)
            if isinstance(r, list) and r:
                return [(e[0], e[1], e[2][1], [x[1] for x in e[3:]]) for e in r]
        return []

    def owner(self, slot, smap=None):
        for lo, hi, p, _ in smap or self.slot_map():
            if lo <= slot <= hi:
                return p
        return None

    def primaries(self, smap=None):
        return sorted({p for _, _, p, _ in smap or self.slot_map()})

    def slots_of(self, port, smap=None):
        return {s for lo, hi, p, _ in smap or self.slot_map() if p == port for s in range(lo, hi + 1)}

    def replica_of(self, port):
        for n in self.nodes:
            i = info(n.port, "replication")
            if n.alive() and i.get("role") == "slave" and i.get("master_port") == str(port):
                return n
        return None

    def data_ports(self):
        return self.primaries()

    # A slot moves as redis-cli --cluster reshard moves it: IMPORTING on the
    # node it goes to, MIGRATING on the node it leaves, its keys MIGRATEd in
    # batches, then SETSLOT NODE on the new owner first (so that the slot
    # always has one), the old one, and the other primaries.
    def begin_migration(self, slots, src, dst):
        for slot in slots:
            for port, words in ((dst, ("IMPORTING", self.ids[src])), (src, ("MIGRATING", self.ids[dst]))):
                r = rcmd(port, "CLUSTER", "SETSLOT", str(slot), *words)
                if r != "+OK":
                    raise RuntimeError("CLUSTER SETSLOT %d %s on %d: %r" % (slot, words[0], port, r))

    def move_keys(self, slot, src, dst, batch):
        """MIGRATE at most BATCH keys of SLOT; returns how many were left there."""
        keys = rcmd(src, "CLUSTER", "GETKEYSINSLOT", str(slot), str(batch))
        if not isinstance(keys, list):
            raise RuntimeError("CLUSTER GETKEYSINSLOT %d on %d: %r" % (slot, src, keys))
        if keys:
            r = rcmd(src, "MIGRATE", "127.0.0.1", str(dst), "", "0", "5000", "KEYS", *keys, timeout=10.0)
            if r not in ("+OK", "+NOKEY"):
                raise RuntimeError("MIGRATE from %d to %d: %r" % (src, dst, r))
        return len(keys)

    def end_migration(self, slots, src, dst):
        for slot in slots:
            for port in [dst, src] + [p for p in self.primaries() if p not in (src, dst)]:
                r = rcmd(port, "CLUSTER", "SETSLOT", str(slot), "NODE", self.ids[dst])
                if r != "+OK":
                    raise RuntimeError("CLUSTER SETSLOT %d NODE on %d: %r" % (slot, port, r))

    def stop(self):
        for n in self.nodes:
            n.stop()
