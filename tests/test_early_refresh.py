#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-3-Clause
"""Integration tests of the probabilistic early refresh (early_refresh_beta,
docs/design.md section 14), run by `make check`.

A real redis-server, the example upstream (50 ms a fetch, a request
counter per id) and the daemon with ttl_s = 2 and no jitter. A steady read
load on four keys for four TTLs: with early_refresh_beta > 0 every read
after warm-up is a hit (STATS counts no miss and no coalesced wait) and
the upstream sees about one read per TTL per key; with 0 the records
expire and reads miss as before.
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
from cstest import Conn, daemon_ini, free_port, stats, stop_all, upstream_req, wait_port  # noqa: E402

DAEMON = os.environ.get("CACHASIDED_BIN", "src/cachasided")
UPSTREAM = os.environ.get("CACHASIDED_UPSTREAM_BIN", "tests/cachasided-example-upstream")
REDIS = os.environ.get("REDIS_SERVER") or shutil.which("redis-server") or "redis-server"

KEYS = ["p-001", "p-002", "p-003", "p-004"]
TTL_S = 2
LOAD_S = 4 * TTL_S


class EarlyRefresh(unittest.TestCase):
    def start(self, beta, near=False):
        self.tmp = tempfile.mkdtemp(prefix="cachasided-xfetch-")
        self.rport, self.uport, self.port = free_port(), free_port(), free_port()
        self.procs, self.c = [], None
        self.addCleanup(self.stop)
        redis = subprocess.Popen([REDIS, "--port", str(self.rport), "--bind", "127.0.0.1", "--save", "",
                                  "--appendonly", "no", "--logfile", os.path.join(self.tmp, "redis.log")])
        self.procs.append(redis)
        wait_port(self.rport, redis, "redis-server")
        up = subprocess.Popen([UPSTREAM, "-p", str(self.uport), "-g", "10", "-l", "50", "-q"])
        self.procs.append(up)
        wait_port(self.uport, up, "example upstream")
        conf = daemon_ini(os.path.join(self.tmp, "cachasided.ini"), self.port, self.rport, self.uport,
                          server={"admin_listen": "127.0.0.1:%d" % free_port()},
                          cache=dict({"ttl_s": TTL_S, "ttl_jitter_pct": 0, "negative_ttl_s": 1,
                                      "early_refresh_beta": beta}, **({"near_cache_entries": 1000} if near else {})),
                          namespaces={"hot": {"upstream": "http://127.0.0.1:%d/products/{id}" % self.uport,
                                              "near_cache": "yes"}})
        self.ns = "hot:" if near else "product:"
        with open(os.path.join(self.tmp, "daemon.log"), "w") as log:
            d = subprocess.Popen([DAEMON, "-c", conf], stderr=log)
        self.procs.append(d)
        wait_port(self.port, d, "cachasided")
        self.c = Conn(self.port)

    def stop(self):
        if self.c:
            self.c.close()
        self.assertEqual(stop_all(self.procs, self.tmp, DAEMON), [])

    def load(self):
        """Warm up, then read every key about every 10 ms for LOAD_S seconds.
        Returns (STATS after the load, upstream reads per key, slowest read in s)."""
        for k in KEYS:
            self.assertEqual(self.c.cmd("HGET", self.ns + k, "id"), k.encode())
        self.assertEqual(self.c.cmd("STATS", "RESET"), "+OK")
        before = {k: int(upstream_req(self.uport, "GET", "/_count/" + k)) for k in KEYS}
        slowest, end = 0.0, time.time() + LOAD_S
        while time.time() < end:
            for k in KEYS:
                t = time.time()
                self.assertEqual(self.c.cmd("HGET", self.ns + k, "id"), k.encode())
                slowest = max(slowest, time.time() - t)
            time.sleep(0.01)
        reads = {k: int(upstream_req(self.uport, "GET", "/_count/" + k)) - before[k] for k in KEYS}
        return stats(self.c), reads, slowest

    def test_hot_keys_are_refreshed_before_they_expire(self):
        self.start("3")
        st, reads, slowest = self.load()
        sys.stderr.write("early refresh: upstream reads per key %s, slowest read %.1f ms, STATS early_refreshes %s\n"
                         % (reads, slowest * 1000, st["early_refreshes"]))
        # No read waited for the upstream: every one was a fresh hit.
        self.assertEqual(st["misses"], "0")
        self.assertEqual(st["coalesced"], "0")
        self.assertEqual(st["stale_hits"], "0")
        self.assertEqual(st["early_refresh_failures"], "0")
        # About one upstream read per TTL per key (LOAD_S / TTL_S = 4): each
        # refresh comes a little early (the more reads, the earlier: with
        # 50 ms fetches, beta 3 and a read every ~12 ms, some 400 ms), and
        # one at a time, so never as often as twice per TTL; the load made
        # some 600 reads per key.
        for k in KEYS:
            self.assertGreaterEqual(reads[k], LOAD_S // TTL_S - 1, k)
            self.assertLessEqual(reads[k], 2 * LOAD_S // TTL_S, k)
        self.assertEqual(int(st["early_refreshes"]), sum(reads.values()))

    def test_near_cached_hot_keys_are_refreshed_before_they_expire(self):
        # With the near cache on, a hot record's reads are answered from the
        # daemon's memory, not from Redis: the refresh must be drawn there too.
        self.start("3", near=True)
        st, reads, slowest = self.load()
        sys.stderr.write("early refresh, near cache: upstream reads per key %s, slowest read %.1f ms, "
                         "near_hits %s, early_refreshes %s\n"
                         % (reads, slowest * 1000, st["near_hits"], st["early_refreshes"]))
        self.assertGreater(int(st["near_hits"]), 0)
        self.assertEqual(st["misses"], "0")
        self.assertEqual(st["coalesced"], "0")
        self.assertEqual(st["stale_hits"], "0")
        for k in KEYS:
            self.assertGreaterEqual(reads[k], LOAD_S // TTL_S - 1, k)
            self.assertLessEqual(reads[k], 2 * LOAD_S // TTL_S, k)

    def test_beta_zero_changes_nothing(self):
        self.start("0")
        st, reads, _ = self.load()
        # Records expire and reads miss as without the feature.
        self.assertGreaterEqual(int(st["misses"]), len(KEYS) * (LOAD_S // TTL_S - 1))
        self.assertEqual(st["early_refreshes"], "0")
        for k in KEYS:
            self.assertGreaterEqual(reads[k], LOAD_S // TTL_S - 1, k)
            self.assertLessEqual(reads[k], LOAD_S // TTL_S + 1, k)


if __name__ == "__main__":
    unittest.main(verbosity=2)
