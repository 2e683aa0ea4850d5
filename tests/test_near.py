#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-3-Clause
"""Integration tests of the near cache (docs/design.md section 13), run by `make check`.

A real redis-server, the example upstream and one or two daemons on loopback
and free ports. What a user sees: a write by a plain Redis client (HSET, DEL,
an EXPIRE that runs out) reaches the next read through either daemon; a write
that lands while a daemon's read is in flight never leaves the old value kept
(Redis held up with DEBUG SLEEP so the read and the write meet); Redis
restarting flushes it; bounds hold under a scan of many keys; and with the
near cache off (the default) Redis is asked for every read, untracked.
A Sentinel failover re-establishes tracking on the new primary; in a
cluster each primary tracks its own reads, and one going flushes.
"""
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest

sys.dont_write_bytecode = True     # keep the source tree clean
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cstest import Conn, daemon_ini, enc, free_port, wait_port  # noqa: E402

DAEMON = os.environ.get("CACHASIDED_BIN", "src/cachasided")
UPSTREAM = os.environ.get("CACHASIDED_UPSTREAM_BIN", "tests/cachasided-example-upstream")
REDIS = os.environ.get("REDIS_SERVER") or shutil.which("redis-server") or "redis-server"
NEAR = {"near_cache": "yes"}


def rkey(ns, rid):
    """The Redis key of a record (docs/design.md: the id in a hash tag)."""
    return "cache:%s:{%s}" % (ns, rid)


def wait_for(pred, timeout=5.0, what="condition"):
    end = time.time() + timeout
    while time.time() < end:
        v = pred()
        if v:
            return v
        time.sleep(0.01)
    raise AssertionError("timed out waiting for " + what)


class Stack:
    """redis-server + example upstream + N daemons with CACHE in [cache]
    and NSKEYS in both namespaces."""

    def __init__(self, n=1, cache=None, nskeys=NEAR, redis=None):
        self.tmp = tempfile.mkdtemp(prefix="cachasided-near-")
        self.rport, self.uport = free_port(), free_port()
        self.procs, self.daemons = [], []
        self.start_redis()
        self.up = self.spawn([UPSTREAM, "-p", str(self.uport), "-g", "999", "-q"], "upstream.log")
        wait_port(self.uport, self.up, "example upstream")
        for i in range(n):
            port = free_port()
            conf = daemon_ini(os.path.join(self.tmp, "d%d.ini" % i), port, self.rport, self.uport,
                              server={"admin_listen": "127.0.0.1:%d" % free_port()}, redis=redis,
                              cache=dict({"ttl_s": 60, "negative_ttl_s": 30}, **(cache or {})))
            self.patch_ns(conf, nskeys)
            log = os.path.join(self.tmp, "d%d.log" % i)
            d = self.spawn([DAEMON, "-c", conf], log)
            wait_port(port, d, "cachasided")
            self.daemons.append((port, d, log))
        for i in range(n):
            wait_for(lambda: self.ready(i), 10, "daemon %d ready" % i)

    @staticmethod
    def patch_ns(conf, nskeys):
        with open(conf) as f:
            text = f.read()
        extra = "".join("%s = %s\n" % kv for kv in (nskeys or {}).items())
        text = re.sub(r"(\[namespace:[^\]]+\]\n)", lambda m: m.group(1) + extra, text)
        with open(conf, "w") as f:
            f.write(text)

    def spawn(self, argv, logname):
        p = subprocess.Popen(argv, stderr=open(os.path.join(self.tmp, logname), "a"), stdout=subprocess.DEVNULL)
        self.procs.append(p)
        return p

    def start_redis(self):
        self.redis = subprocess.Popen([REDIS, "--port", str(self.rport), "--bind", "127.0.0.1", "--save", "",
                                       "--appendonly", "no", "--logfile", os.path.join(self.tmp, "redis.log"),
                                       "--dir", self.tmp, "--enable-debug-command", "local"])
        wait_port(self.rport, self.redis, "redis-server")

    def stop_redis(self):
        self.redis.terminate()
        self.redis.wait(10)

    def ready(self, i=0):
        """Redis connected, and with the near cache on, tracking confirmed."""
        with open(self.daemons[i][2]) as f:
            log = f.read()
        return "redis: connected" in log and ("near_cache_entries" not in open(self.conf(i)).read()
                                               or log.count("client tracking on") >= 1)

    def conf(self, i):
        return os.path.join(self.tmp, "d%d.ini" % i)

    def conn(self, i=0):
        return Conn(self.daemons[i][0])

    def rconn(self):
        return Conn(self.rport)

    def add_daemon(self, redis, cache=None, name="extra"):
        """One more daemon with REDIS as its [redis] keys; its index once it logs tracking on."""
        port = free_port()
        conf = daemon_ini(os.path.join(self.tmp, name + ".ini"), port, self.rport, self.uport,
                          server={"admin_listen": "127.0.0.1:%d" % free_port()}, redis=redis,
                          cache=dict(ON, ttl_s=60, **(cache or {})))
        self.patch_ns(conf, NEAR)
        d = self.spawn([DAEMON, "-c", conf], name + ".log")
        wait_port(port, d, "cachasided (%s)" % name)
        self.daemons.append((port, d, os.path.join(self.tmp, name + ".log")))
        return len(self.daemons) - 1

    def stats(self, i=0):
        c = self.conn(i)
        text = c.cmd("STATS")
        c.close()
        out = {}
        for line in text.decode().split("\r\n"):
            k, _, v = line.partition(":")
            if v and re.match(r"^-?\d+(\.\d+)?$", v):
                out[k] = float(v)
        return out

    def log(self, i=0):
        with open(self.daemons[i][2]) as f:
            return f.read()

    def close(self):
        for p in self.procs + [self.redis]:
            if p.poll() is None:
                p.kill()
                p.wait()
        if os.environ.get("CACHASIDED_KEEP_TMP"):
            print("kept", self.tmp)
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)


ON = {"near_cache_entries": 1000}


class Near(unittest.TestCase):
    def tearDown(self):
        if getattr(self, "s", None):
            self.s.close()

    def test_off_by_default(self):
        """No near cache keys: every read goes to Redis, no link is tracked."""
        self.s = Stack(nskeys={})
        c = self.s.conn()
        for _ in range(3):
            self.assertEqual(c.cmd("HGET", "product:p-001", "name"), b"Product 1")
        st = self.s.stats()
        self.assertEqual((st["near_hits"], st["near_entries"]), (0, 0))
        self.assertEqual(st["hits"], 2)
        self.assertNotIn("flags=t", self.s.rconn().cmd("CLIENT", "LIST").decode())
        self.assertNotIn(b"__redis__:invalidate", self.s.rconn().cmd("PUBSUB", "CHANNELS"))

    def test_namespace_opts_in(self):
        """near_cache_entries on, a namespace without near_cache = yes: not kept."""
        self.s = Stack(cache=ON, nskeys={})
        c = self.s.conn()
        for _ in range(3):
            self.assertEqual(c.cmd("HGET", "product:p-001", "name"), b"Product 1")
        st = self.s.stats()
        self.assertEqual((st["near_hits"], st["near_misses"], st["near_entries"]), (0, 0, 0))

    def test_hits_without_redis_in_every_shape(self):
        self.s = Stack(cache=ON)
        c = self.s.conn()

        def near(*cmd):
            """The reply, and how many near hits it made."""
            h = self.s.stats()["near_hits"]
            return c.cmd(*cmd), self.s.stats()["near_hits"] - h

        full = c.cmd("HGETALL", "product:p-002")                    # miss: fetched
        # Kept by a read from Redis (a read that the fill's own invalidation
        # overtook is not kept: the next one is).
        wait_for(lambda: near("HGETALL", "product:p-002") == (full, 1), 2, "HGETALL kept")
        self.assertEqual(near("HGET", "product:p-002", "name"), (b"Product 2", 1))
        self.assertEqual(near("HMGET", "product:p-002", "price", "nope", "__exp", "name"),
                         ([b"2.99", None, None, b"Product 2"], 1))
        page = c.cmd("GET", "page:p-003")
        wait_for(lambda: near("GET", "page:p-003") == (page, 1), 2, "GET kept")
        page4 = c.cmd("GET", "page:p-004")
        wait_for(lambda: near("GET", "page:p-004") == (page4, 1), 2, "GET kept")
        # A repeated key is looked up once.
        self.assertEqual(near("MGET", "page:p-003", "page:p-004", "page:p-003"), ([page, page4, page], 2))
        # Not found, kept as such.
        self.assertEqual(c.cmd("HGETALL", "product:nope"), [])
        wait_for(lambda: near("HGETALL", "product:nope") == ([], 1), 2, "not-found kept")
        self.assertEqual(c.cmd("GET", "page:nope"), None)
        wait_for(lambda: near("GET", "page:nope") == (None, 1), 2, "not-found kept")
        self.assertEqual(near("HGET", "product:nope", "name"), (None, 1))
        after = self.s.stats()
        # RESP3: the same record as a map (the header differs, the pairs are the same).
        r3 = self.s.conn()
        r3.s.sendall(enc("HELLO", "3") + enc("HGETALL", "product:p-002"))
        want = b"%%%d\r\n$%d\r\n%s\r\n" % (len(full) // 2, len(full[0]), full[0])
        wait_for(lambda: r3._fill() or want in r3.buf, 2, "the RESP3 map")
        self.assertEqual(self.s.stats()["near_hits"], after["near_hits"] + 1)

    def test_writes_by_any_client_reach_two_daemons(self):
        self.s = Stack(n=2, cache=ON)
        conns = [self.s.conn(0), self.s.conn(1)]
        key = rkey("product", "p-005")

        def names():
            return [c.cmd("HGET", "product:p-005", "name") for c in conns]

        for _ in range(3):
            self.assertEqual(names(), [b"Product 5", b"Product 5"])
        self.assertTrue(all(self.s.stats(i)["near_hits"] >= 1 for i in (0, 1)))
        r = self.s.rconn()
        # HSET by a plain client.
        r.cmd("HSET", key, "name", "Changed")
        wait_for(lambda: names() == [b"Changed", b"Changed"], 2, "the HSET seen by both daemons")
        for i in (0, 1):
            self.assertGreaterEqual(self.s.stats(i)["near_evict_invalidation"], 1)
        self.assertEqual(names(), [b"Changed", b"Changed"])           # kept again, exact
        # DEL: the next read is a miss, fetched again from the upstream.
        r.cmd("DEL", key)
        wait_for(lambda: names() == [b"Product 5", b"Product 5"], 2, "the DEL seen by both daemons")
        # An expiry in Redis: the key goes, and the near entries with it.
        r.cmd("HSET", key, "name", "Expiring")
        wait_for(lambda: names() == [b"Expiring", b"Expiring"], 2, "the second HSET")
        self.assertEqual(names(), [b"Expiring", b"Expiring"])
        r.cmd("PEXPIRE", key, "300")
        wait_for(lambda: names() == [b"Product 5", b"Product 5"], 3, "the expiry seen by both daemons")

    def test_writes_through_the_daemon_are_read_back_at_once(self):
        """HSET, DEL and INVALIDATE through the daemon, each pipelined with
        the read after it: the read never answers the record from before,
        whenever Redis's invalidation message comes."""
        self.s = Stack(cache=ON)
        c, r = self.s.conn(), self.s.rconn()

        def kept(rid, name):
            """The record in Redis has NAME, and the near cache keeps it."""
            c.cmd("HGET", "product:" + rid, "name")         # cached (fetched when not)
            r.cmd("HSET", rkey("product", rid), "name", name)
            wait_for(lambda: c.cmd("HGET", "product:" + rid, "name") == name.encode() and
                     c.cmd("HGET", "product:" + rid, "name") == name.encode() and
                     self.s.stats()["near_entries"] >= 1, 2, "%s kept" % rid)

        for i in range(30):
            rid = "p-%03d" % (100 + i % 5)
            c.cmd("HGET", "product:" + rid, "name")
            c.cmd("HGET", "product:" + rid, "name")
            c.send("HSET", "product:" + rid, "name", "mine-%d" % i)
            c.send("HGET", "product:" + rid, "name")
            self.assertIsInstance(c.reply(), int)
            self.assertEqual(c.reply(), b"mine-%d" % i, "HSET, round %d" % i)
        for i in range(10):
            kept("p-110", "direct-%d" % i)
            c.send("DEL", "product:p-110")
            c.send("HGET", "product:p-110", "name")
            self.assertEqual(c.reply(), 1)
            self.assertEqual(c.reply(), b"Product 110", "DEL, round %d" % i)
        for i in range(5):
            kept("p-111", "direct-%d" % i)
            c.send("INVALIDATE", "product:p-11*")
            c.send("HGET", "product:p-111", "name")
            self.assertGreaterEqual(c.reply(), 1)
            self.assertEqual(c.reply(), b"Product 111", "INVALIDATE, round %d" % i)

    def test_write_during_a_read_never_leaves_the_old_value(self):
        """Redis is held up (DEBUG SLEEP) while a daemon's read and a plain
        client's HSET of the same key queue behind it: the read may answer
        the old value, but the near cache never keeps it."""
        self.s = Stack(cache=ON)
        c, r = self.s.conn(), self.s.rconn()
        key = rkey("product", "p-007")
        self.assertEqual(c.cmd("HGET", "product:p-007", "name"), b"Product 7")
        cancelled = 0
        for i in range(30):
            r.cmd("HSET", key, "name", "v%d" % i)      # the entry goes: the next read asks Redis
            wait_for(lambda: self.s.stats()["near_entries"] == 0, 2, "the entry evicted, round %d" % i)
            sleeper, writer = self.s.rconn(), self.s.rconn()
            sleeper.send("DEBUG", "SLEEP", "0.15")
            time.sleep(0.03)
            c.send("HGETALL", "product:p-007")          # the read waits behind the sleep
            time.sleep(0.03)
            writer.send("HSET", key, "name", "w%d" % i)  # ... and the write after it
            self.assertEqual(sleeper.reply(), "+OK")
            self.assertEqual(writer.reply(), 0)
            c.reply()                                   # old or new: both were current
            time.sleep(0.02)
            self.assertEqual(c.cmd("HGET", "product:p-007", "name"), b"w%d" % i, "round %d" % i)
            self.assertEqual(c.cmd("HGET", "product:p-007", "name"), b"w%d" % i, "round %d" % i)
            sleeper.close()
            writer.close()
            cancelled = self.s.stats()["near_keeps_cancelled"]
        # The interleaving this test is about did happen: an invalidation
        # came between a read's send and its reply.
        self.assertGreater(cancelled, 0)

    def test_redis_restart_flushes(self):
        self.s = Stack(cache=ON)
        c = self.s.conn()
        for _ in range(3):
            self.assertEqual(c.cmd("HGET", "product:p-009", "name"), b"Product 9")
        self.assertEqual(self.s.stats()["near_entries"], 1)
        self.s.stop_redis()
        wait_for(lambda: self.s.stats()["near_entries"] == 0, 3, "the flush when Redis went")
        self.assertGreaterEqual(self.s.stats()["near_evict_flush"], 1)
        # Redis comes back with the key holding something else: that is what is read.
        self.s.start_redis()
        r = self.s.rconn()
        r.cmd("HSET", rkey("product", "p-009"), "name", "Restarted", "__exp", str(int(time.time() * 1000) + 60000))
        wait_for(lambda: self.s.log().count("client tracking on") >= 2, 5, "tracking on again")
        self.assertEqual(c.cmd("HGET", "product:p-009", "name"), b"Restarted")
        self.assertEqual(c.cmd("HGET", "product:p-009", "name"), b"Restarted")
        r.cmd("HSET", rkey("product", "p-009"), "name", "Again")
        wait_for(lambda: c.cmd("HGET", "product:p-009", "name") == b"Again", 2, "tracking after the restart")

    def test_max_stale_serves_while_redis_is_down(self):
        self.s = Stack(cache=dict(ON, near_cache_max_stale_ms=60000))
        c = self.s.conn()
        for _ in range(3):
            self.assertEqual(c.cmd("HGET", "product:p-011", "name"), b"Product 11")
        self.s.stop_redis()
        time.sleep(0.3)
        hits = self.s.stats()["near_hits"]
        self.assertEqual(c.cmd("HGET", "product:p-011", "name"), b"Product 11")
        self.assertEqual(self.s.stats()["near_hits"], hits + 1)

    def test_bounds_hold_under_a_scan(self):
        self.s = Stack(cache={"near_cache_entries": 50, "near_cache_bytes": 8000})
        c = self.s.conn()
        for rnd in range(2):            # the first round fills, the second reads Redis hits
            for i in range(1, 400):
                c.send("HGETALL", "product:p-%03d" % i)
            for i in range(1, 400):
                self.assertIsInstance(c.reply(), list)
        st = self.s.stats()
        self.assertLessEqual(st["near_entries"], 50)
        self.assertLessEqual(st["near_bytes"], 8000)
        self.assertGreater(st["near_evict_capacity"], 300)
        # bytes, not entries, the bound here: ~220 bytes a record
        self.assertLess(st["near_entries"], 50)

    def test_reload(self):
        """near_cache_bytes applies at a reload; near_cache_entries waits for
        a restart (logged); a namespace can opt out."""
        self.s = Stack(cache=ON)
        c = self.s.conn()
        for i in range(1, 21):
            for _ in range(3):
                c.cmd("HGETALL", "product:p-%03d" % i)
        self.assertEqual(self.s.stats()["near_entries"], 20)
        conf = self.s.conf(0)
        with open(conf) as f:
            text = f.read()
        text = text.replace("near_cache_entries = 1000\n", "near_cache_entries = 5\nnear_cache_bytes = 2000\n")
        with open(conf, "w") as f:
            f.write(text)
        self.s.daemons[0][1].send_signal(signal.SIGHUP)
        wait_for(lambda: "[cache] near_cache_entries changed" in self.s.log(), 5, "the restart-only warning")
        for _ in range(3):
            c.cmd("HGETALL", "product:p-050")
        st = self.s.stats()
        self.assertLessEqual(st["near_bytes"], 2000)
        self.assertGreater(st["near_entries"], 5)           # entries: still 1000 until a restart
        with open(conf, "w") as f:
            f.write(text.replace("near_cache = yes\n", "near_cache = no\n"))
        self.s.daemons[0][1].send_signal(signal.SIGHUP)
        wait_for(lambda: self.s.log().count("reload: configuration applied") >= 2, 5, "the second reload")
        time.sleep(0.2)
        hits = self.s.stats()["near_hits"]
        c.cmd("HGETALL", "product:p-050")
        self.assertEqual(self.s.stats()["near_hits"], hits)

    def test_bad_keys_are_refused(self):
        tmp = tempfile.mkdtemp(prefix="cachasided-near-conf-")
        self.s = None
        try:
            cases = [("[cache]\nnear_cache_entries = -1\n", "near_cache_entries"),
                     ("[cache]\nnear_cache_bytes = lots\n", "near_cache_bytes"),
                     ("[namespace:x]\nupstream = http://127.0.0.1:1/{id}\nnear_cache = maybe\n", "near_cache"),
                     ("[namespace:x]\nupstream = http://127.0.0.1:1/{id}\nnear_cache_entries = 5\n",
                      "unknown key 'near_cache_entries'")]
            for text, word in cases:
                path = os.path.join(tmp, "c.ini")
                with open(path, "w") as f:
                    f.write(text)
                p = subprocess.run([DAEMON, "-t", "-c", path], capture_output=True, text=True, timeout=10)
                self.assertNotEqual(p.returncode, 0, text)
                self.assertRegex(p.stderr, re.escape(path) + r":\d+: .*" + re.escape(word), text)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def test_cluster_tracks_on_each_primary(self):
        self.s = Stack(n=0)
        s = self.s
        ports, buses, nodes = [free_port(), free_port()], [free_port(), free_port()], []
        for p, bus in zip(ports, buses):
            node = s.spawn([REDIS, "--port", str(p), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                            "--cluster-enabled", "yes", "--cluster-port", str(bus), "--dir", s.tmp,
                            "--cluster-config-file", os.path.join(s.tmp, "nodes-%d.conf" % p)], "node-%d.log" % p)
            wait_port(p, node, "cluster node")
            nodes.append(node)
        a, b = Conn(ports[0]), Conn(ports[1])
        self.assertEqual(a.cmd("CLUSTER", "ADDSLOTSRANGE", "0", "8191"), "+OK")
        self.assertEqual(b.cmd("CLUSTER", "ADDSLOTSRANGE", "8192", "16383"), "+OK")
        self.assertEqual(a.cmd("CLUSTER", "MEET", "127.0.0.1", str(ports[1]), str(buses[1])), "+OK")
        wait_for(lambda: all(b"cluster_state:ok" in x.cmd("CLUSTER", "INFO") for x in (a, b)), 15, "cluster ok")
        # One record on each primary.
        ids = {}
        for i in range(1, 60):
            rid = "p-%03d" % i
            ids.setdefault(a.cmd("CLUSTER", "KEYSLOT", rkey("product", rid)) >= 8192, rid)
        self.assertEqual(len(ids), 2)
        i = s.add_daemon({"mode": "cluster", "nodes": "127.0.0.1:%d" % ports[0]}, name="cluster")
        wait_for(lambda: s.log(i).count("client tracking on") >= 2, 10, "tracking on both primaries")
        c = s.conn(i)
        for rid in ids.values():
            for _ in range(3):
                self.assertEqual(c.cmd("HGET", "product:" + rid, "name"), b"Product %d" % int(rid[2:]))
        wait_for(lambda: s.stats(i)["near_entries"] == 2, 2, "both kept")
        hits = s.stats(i)["near_hits"]
        for rid in ids.values():
            c.cmd("HGET", "product:" + rid, "name")
        self.assertEqual(s.stats(i)["near_hits"], hits + 2)
        # A plain client's write on each primary reaches the daemon.
        for on_b, rid in ids.items():
            (b if on_b else a).cmd("HSET", rkey("product", rid), "name", "Changed " + rid)
            wait_for(lambda: c.cmd("HGET", "product:" + rid, "name") == ("Changed " + rid).encode(), 2,
                     "the HSET on %s's primary" % rid)
        # A primary gone: nothing is kept past it.
        for rid in ids.values():
            c.cmd("HGET", "product:" + rid, "name")
        wait_for(lambda: s.stats(i)["near_entries"] == 2, 2, "both kept again")
        nodes[1].kill()
        wait_for(lambda: s.stats(i)["near_entries"] == 0, 3, "the flush when a primary went")
        self.assertGreaterEqual(s.stats(i)["near_evict_flush"], 2)

    def test_sentinel_failover_reestablishes_tracking(self):
        self.s = Stack(cache=ON)
        s = self.s
        replica_port, sport = free_port(), free_port()
        replica = s.spawn([REDIS, "--port", str(replica_port), "--bind", "127.0.0.1", "--save", "", "--appendonly",
                           "no", "--replicaof", "127.0.0.1", str(s.rport), "--dir", s.tmp], "replica.log")
        wait_port(replica_port, replica, "replica")
        sconf = os.path.join(s.tmp, "sentinel.conf")
        with open(sconf, "w") as f:
            f.write("port %d\nbind 127.0.0.1\nsentinel monitor cache 127.0.0.1 %d 1\n"
                    "sentinel down-after-milliseconds cache 1000\n" % (sport, s.rport))
        sent = s.spawn([REDIS, sconf, "--sentinel"], "sentinel.log")
        wait_port(sport, sent, "sentinel")
        wait_for(lambda: b"slave0" in Conn(replica_port).cmd("INFO", "replication") or
                 b"master_link_status:up" in Conn(replica_port).cmd("INFO", "replication"), 10, "replication")
        port = free_port()
        conf = daemon_ini(os.path.join(s.tmp, "sd.ini"), port, s.rport, s.uport,
                          server={"admin_listen": "127.0.0.1:%d" % free_port()},
                          redis={"mode": "sentinel", "master_name": "cache", "sentinels": "127.0.0.1:%d" % sport},
                          cache=dict(ON, ttl_s=60))
        Stack.patch_ns(conf, NEAR)
        log = os.path.join(s.tmp, "sd.log")
        d = s.spawn([DAEMON, "-c", conf], "sd.log")
        wait_port(port, d, "cachasided (sentinel)")
        s.daemons.append((port, d, log))
        i = len(s.daemons) - 1
        wait_for(lambda: "client tracking on" in s.log(i), 10, "tracking on the first primary")
        c = s.conn(i)
        for _ in range(3):
            self.assertEqual(c.cmd("HGET", "product:p-013", "name"), b"Product 13")
        wait_for(lambda: Conn(replica_port).cmd("EXISTS", rkey("product", "p-013")) == 1, 5, "the record replicated")
        self.assertEqual(s.stats(i)["near_entries"], 1)
        # Once the sentinel has seen the replica (its INFO of the primary).
        wait_for(lambda: Conn(sport).cmd("SENTINEL", "FAILOVER", "cache") == "+OK", 20, "a failover")
        wait_for(lambda: s.log(i).count("client tracking on") >= 2, 15, "tracking on the new primary")
        self.assertGreaterEqual(s.stats(i)["near_evict_flush"], 1)
        # The new primary tracks this daemon's reads: its write reaches us.
        wait_for(lambda: c.cmd("HGET", "product:p-013", "name") == b"Product 13", 5, "reads after the switch")
        self.assertEqual(c.cmd("HGET", "product:p-013", "name"), b"Product 13")
        Conn(replica_port).cmd("HSET", rkey("product", "p-013"), "name", "On the new primary")
        wait_for(lambda: c.cmd("HGET", "product:p-013", "name") == b"On the new primary", 3,
                 "the new primary's invalidation")


if __name__ == "__main__":
    unittest.main(verbosity=2)
