#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-3-Clause
"""Integration tests of the shared circuit breaker (breaker_failures,
breaker_open_ms; docs/design.md section 14), run by `make check`.

One redis-server, the example upstream (its statuses set per id, its
request counter) and three daemons. With the upstream answering 503:
after breaker_failures failures through one daemon, misses through all
three answer -UPSTREAM unavailable at once and the upstream's counter does
not move; over several open periods the three daemons together send at
most one probe per breaker_open_ms; once the upstream is back, one probe's
success closes the breaker for all three. With breaker_failures = 0 (the
default) every miss still goes to the failing upstream.
"""
import os
import shutil
import subprocess
import sys
import tempfile
import time
import unittest

sys.dont_write_bytecode = True     # keep the source tree clean
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cstest import Conn, RespError, daemon_ini, free_port, stats, stop_all, upstream_req, wait_port  # noqa: E402

DAEMON = os.environ.get("CACHASIDED_BIN", "src/cachasided")
UPSTREAM = os.environ.get("CACHASIDED_UPSTREAM_BIN", "tests/cachasided-example-upstream")
REDIS = os.environ.get("REDIS_SERVER") or shutil.which("redis-server") or "redis-server"

FAILURES = 3
OPEN_MS = 1500
IDS = ["p-%03d" % i for i in range(1, 101)]


class Breaker(unittest.TestCase):
    def start(self, daemons, cache):
        self.tmp = tempfile.mkdtemp(prefix="cachasided-breaker-")
        self.rport, self.uport = free_port(), free_port()
        self.procs, self.conns = [], []
        self.addCleanup(self.stop)
        redis = subprocess.Popen([REDIS, "--port", str(self.rport), "--bind", "127.0.0.1", "--save", "",
                                  "--appendonly", "no", "--logfile", os.path.join(self.tmp, "redis.log")])
        self.procs.append(redis)
        wait_port(self.rport, redis, "redis-server")
        up = subprocess.Popen([UPSTREAM, "-p", str(self.uport), "-g", str(len(IDS)), "-q"])
        self.procs.append(up)
        wait_port(self.uport, up, "example upstream")
        for i in range(daemons):
            port = free_port()
            conf = daemon_ini(os.path.join(self.tmp, "d%d.ini" % i), port, self.rport, self.uport,
                              server={"admin_listen": "127.0.0.1:%d" % free_port()},
                              cache=dict({"ttl_s": 60, "negative_ttl_s": 1, "upstream_timeout_ms": 1000}, **cache))
            with open(os.path.join(self.tmp, "d%d.log" % i), "w") as log:
                d = subprocess.Popen([DAEMON, "-c", conf], stderr=log)
            self.procs.append(d)
            wait_port(port, d, "cachasided")
            self.conns.append(Conn(port))

    def stop(self):
        for c in self.conns:
            c.close()
        self.assertEqual(stop_all(self.procs, self.tmp, DAEMON), [])

    def fail_upstream(self, ids):
        for i in ids:
            upstream_req(self.uport, "PUT", "/_status/" + i, b"503")

    def count(self):
        return int(upstream_req(self.uport, "GET", "/_count"))

    def read(self, c, i):
        """(reply, seconds) of one read."""
        t = time.time()
        r = c.cmd("HGET", "product:" + i, "id")
        return r, time.time() - t

    def test_breaker_is_shared_probes_once_per_period_and_closes_for_all(self):
        self.start(3, {"breaker_failures": FAILURES, "breaker_open_ms": OPEN_MS})
        self.fail_upstream(IDS)
        # breaker_failures failures, through one daemon: each reaches the upstream.
        for i in IDS[:FAILURES]:
            r, _ = self.read(self.conns[0], i)
            self.assertEqual(r, RespError("-UPSTREAM status 503"))
        opened = time.time()
        self.assertEqual(self.count(), FAILURES)
        # Open: every daemon refuses misses at once, and the upstream sees nothing.
        for n, i in enumerate(IDS[FAILURES:FAILURES + 9]):
            r, took = self.read(self.conns[n % 3], i)
            self.assertEqual(r, RespError("-UPSTREAM unavailable"))
            self.assertLess(took, 0.25)
        self.assertEqual(self.count(), FAILURES)
        for c in self.conns:
            self.assertEqual(stats(c)["namespace_breaker_product"], "1")
        # Three open periods under load through all three daemons: the
        # probes (the only reads that reach the upstream) come one per
        # period at most, whichever daemon sends them.
        probes, n, end = [], 0, opened + 3.2 * OPEN_MS / 1000
        while time.time() < end:
            r, _ = self.read(self.conns[n % 3], IDS[10 + n % 80])
            if r == RespError("-UPSTREAM status 503"):
                probes.append(time.time())
            else:
                self.assertEqual(r, RespError("-UPSTREAM unavailable"))
            n += 1
            time.sleep(0.005)
        sent = self.count() - FAILURES
        sys.stderr.write("breaker: %d reads over %.1f s, %d probes reached the upstream at %s s\n"
                         % (n, end - opened, sent, ["%.2f" % (p - opened) for p in probes]))
        self.assertEqual(sent, len(probes))
        self.assertGreaterEqual(sent, 2)
        self.assertLessEqual(sent, 3)
        for a, b in zip(probes, probes[1:]):
            self.assertGreaterEqual(b - a, OPEN_MS / 1000 * 0.9)
        # The upstream is back: the next probe succeeds and closes it for all three.
        for i in IDS:
            upstream_req(self.uport, "DELETE", "/_status/" + i)
        deadline, k = time.time() + 2 * OPEN_MS / 1000 + 2, 0
        while True:
            r, _ = self.read(self.conns[0], IDS[90 + k % 5])
            if r == IDS[90 + k % 5].encode():
                break
            self.assertEqual(r, RespError("-UPSTREAM unavailable"))
            self.assertLess(time.time(), deadline)
            k += 1
            time.sleep(0.02)
        for c, i in zip(self.conns[1:], IDS[95:]):
            self.assertEqual(self.read(c, i)[0], i.encode())
        for c in self.conns:
            st = stats(c)
            self.assertEqual(st["namespace_breaker_product"], "0")
        total = sum(int(stats(c)["breaker_refused"]) for c in self.conns)
        self.assertGreaterEqual(total, n - len(probes))
        changes = sum(int(stats(c)["breaker_changes"]) for c in self.conns)
        self.assertGreaterEqual(changes, 2)     # closed -> open ... -> closed

    def test_off_by_default(self):
        self.start(1, {})
        self.fail_upstream(IDS[:10])
        for i in IDS[:10]:
            self.assertEqual(self.read(self.conns[0], i)[0], RespError("-UPSTREAM status 503"))
        self.assertEqual(self.count(), 10)
        self.assertEqual(stats(self.conns[0])["breaker_refused"], "0")


if __name__ == "__main__":
    unittest.main(verbosity=2)
