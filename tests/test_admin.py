#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-3-Clause
"""Integration tests of the admin endpoint (docs/design.md section 9), run by `make check`.

A real redis-server, the example upstream and the daemon, on loopback and
free ports. Checks what an operator sees: counters and histogram counts
after a known sequence, /metrics with exactly the families of docs/admin.md
(promtool finds nothing to say; reads and upstream fetches by outcome and
result; the fixed histogram buckets; process_* from /proc; reloads), the probes (/livez, /readyz and its alias /healthz: Redis down is
degraded, Redis and the upstream down or a drain is unready; the systemd
watchdog), outage lines at warning and the debug trace, the HTTP rules (404, 405
with Allow, auth with requirepass, unix socket form), the demo actions giving
their memory back, the admin port's limits (a connection cap, a pause when
out of descriptors), and the dashboard in headless Chromium running a
50-reader stampede that shows one upstream read.
"""
import base64
import json
import os
import re
import resource
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.parse

sys.dont_write_bytecode = True     # keep the source tree clean
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cstest import Conn, daemon_ini, free_port, wait_port  # noqa: E402

DAEMON = os.environ.get("CACHASIDED_BIN", "src/cachasided")
UPSTREAM = os.environ.get("CACHASIDED_UPSTREAM_BIN", "tests/cachasided-example-upstream")
REDIS = os.environ.get("REDIS_SERVER") or shutil.which("redis-server") or "redis-server"


def http(port, method, path, headers=None, unix=None, timeout=5.0):
    """Returns (status, headers dict (lower-case names), body bytes)."""
    if unix:
        s = socket.socket(socket.AF_UNIX)
        s.settimeout(timeout)
        s.connect(unix)
    else:
        s = socket.create_connection(("127.0.0.1", port), timeout)
    h = "".join("%s: %s\r\n" % kv for kv in (headers or {}).items())
    s.sendall(("%s %s HTTP/1.1\r\nHost: t\r\nConnection: close\r\nContent-Length: 0\r\n%s\r\n"
               % (method, path, h)).encode())
    data = b""
    while True:
        d = s.recv(65536)
        if not d:
            break
        data += d
    s.close()
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    status = int(lines[0].split()[1])
    hdrs = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        hdrs[k.strip().lower()] = v.strip()
    return status, hdrs, body


class Stack:
    """redis-server + example upstream + one daemon; restartable parts.
    NOFILE: the daemon's open files limit, soft and hard (it raises a soft
    one by itself)."""

    def __init__(self, server=None, latency=100, nofile=None, env=None, args=(), namespaces=None, uport=None):
        self.tmp = tempfile.mkdtemp(prefix="cachasided-admin-")
        self.rport, self.uport, self.port, self.aport = free_port(), uport or free_port(), free_port(), free_port()
        self.procs = []
        self.start_redis()
        self.up = subprocess.Popen([UPSTREAM, "-p", str(self.uport), "-g", "100", "-l", str(latency), "-q"],
                                   stderr=open(os.path.join(self.tmp, "upstream.log"), "w"))
        self.procs.append(self.up)
        wait_port(self.uport, self.up, "example upstream")
        self.conf = daemon_ini(
            os.path.join(self.tmp, "cachasided.ini"), self.port, self.rport, self.uport,
            server=dict({"admin_listen": "127.0.0.1:%d" % self.aport, "admin_demo": "yes", "shutdown_grace_ms": 4000},
                        **(server or {})),
            cache={"ttl_s": 60, "negative_ttl_s": 30, "lock_ttl_ms": 3000, "upstream_timeout_ms": 2000},
            namespaces=namespaces)
        self.log = os.path.join(self.tmp, "daemon.log")
        limit = (lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))) if nofile else None
        self.daemon = subprocess.Popen([DAEMON, "-c", self.conf] + list(args), stderr=open(self.log, "w"),
                                       preexec_fn=limit, env=dict(os.environ, **(env or {})))
        self.procs.append(self.daemon)
        wait_port(self.port, self.daemon, "cachasided")
        wait_port(self.aport, self.daemon, "admin endpoint")
        # Redis connected (the scripts loaded): ready and not degraded.
        end = time.time() + 10
        while time.time() < end and http(self.aport, "GET", "/readyz")[::2] != (200, b"ok\n"):
            time.sleep(0.05)

    def start_upstream(self):
        self.up = subprocess.Popen([UPSTREAM, "-p", str(self.uport), "-g", "100", "-q"],
                                   stderr=open(os.path.join(self.tmp, "upstream.log"), "a"))
        self.procs.append(self.up)
        wait_port(self.uport, self.up, "example upstream")

    def stop_upstream(self):
        self.up.terminate()
        self.up.wait(10)

    def start_redis(self):
        self.redis = subprocess.Popen([REDIS, "--port", str(self.rport), "--bind", "127.0.0.1", "--save", "",
                                       "--appendonly", "no", "--logfile", os.path.join(self.tmp, "redis.log")])
        wait_port(self.rport, self.redis, "redis-server")

    def stop_redis(self):
        self.redis.terminate()
        self.redis.wait(10)

    def upstream_put(self, path, body):
        s = socket.create_connection(("127.0.0.1", self.uport), 5)
        s.sendall(b"PUT %s HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s"
                  % (path.encode(), len(body), body))
        s.recv(4096)
        s.close()

    def stats(self, **kw):
        st, _, body = http(self.aport, "GET", "/stats", **kw)
        assert st == 200, st
        return json.loads(body)

    def close(self):
        for p in self.procs + [self.redis]:
            if p.poll() is None:
                p.kill()
                p.wait()
        if os.environ.get("CACHASIDED_KEEP_TMP"):
            print("kept", self.tmp)
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)


def vm_rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS for pid %d" % pid)


def sanitized(path):
    """Whether the binary is built with AddressSanitizer (configure --enable-sanitizers)."""
    try:
        with open(path, "rb") as f:
            return b"__asan_init" in f.read()
    except OSError:
        return False


SANITIZED = sanitized(DAEMON)


def cpu_ticks(pid):
    """User + system CPU time of PID, in clock ticks."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])          # utime, stime


def read_log(path):
    with open(path, "rb") as f:
        return f.read()


def has_line(test, text, pattern):
    """assertRegex without printing a whole exposition on failure."""
    test.assertIsNotNone(re.search(pattern, text), "no line matching %s" % pattern)


class Admin(unittest.TestCase):
    maxDiff = None

    def setUp(self):
        self.s = Stack()

    def tearDown(self):
        self.s.close()

    def test_counters_follow_a_known_sequence(self):
        s = self.s
        c = Conn(s.port)
        self.assertEqual(http(s.aport, "POST", "/stats/reset")[0], 200)
        self.assertIsInstance(c.cmd("HGETALL", "product:p-001"), list)      # miss, fetched
        self.assertIsInstance(c.cmd("HGETALL", "product:p-001"), list)      # hit
        self.assertEqual(c.cmd("HGETALL", "product:nope"), [])             # miss, not found
        self.assertEqual(c.cmd("HGETALL", "product:nope"), [])             # negative hit
        s.upstream_put("/_status/p-003", b"503")
        self.assertTrue(c.cmd("HGETALL", "product:p-003").startswith("-UPSTREAM status 503"))
        self.assertEqual(c.cmd("DEL", "product:p-001"), 1)
        self.assertEqual(c.cmd("HSET", "product:p-002", "stock", "1"), 0)  # not cached
        self.assertIsInstance(c.cmd("HGET", "product:p-002", "name"), bytes)  # miss
        self.assertEqual(c.cmd("HSET", "product:p-002", "stock", "1"), 1)
        st = s.stats()
        want = {"hits": 1, "misses": 4, "negative_hits": 1, "stale_hits": 0, "upstream_requests": 4,
                "upstream_errors": 1, "invalidations": 1, "field_updates": 1, "coalesced": 0,
                "request_duration_hit_count": 1, "request_duration_miss_count": 3,
                "request_duration_negative_count": 1, "request_duration_error_count": 1,
                "upstream_duration_count": 4, "fills_led": 4,
                "namespace_hits_product": 2, "namespace_misses_product": 4, "namespace_errors_product": 1}
        got = {k: st.get(k) for k in want}
        self.assertEqual(got, want)
        self.assertGreater(st["request_duration_miss_p50_us"], 50000)       # the upstream's 100 ms
        self.assertLess(st["request_duration_hit_p50_us"], 50000)
        self.assertGreaterEqual(st["redis_duration_count"], 8)
        self.assertEqual(st["hit_rate_pct"], 2 * 100 // 6)
        # STATS shows the same figures (and percentile lines).
        text = c.cmd("STATS").decode()
        self.assertIn("request_duration_hit_p99_us:", text)
        self.assertIn("hits:1\r\n", text)
        # Redis outage: reads still answered from the upstream, writes refused.
        s.stop_redis()
        time.sleep(0.3)
        self.assertIsInstance(c.cmd("HGETALL", "product:p-010"), list)
        self.assertTrue(c.cmd("DEL", "product:p-010").startswith("-TRYAGAIN"))
        st2 = s.stats()
        self.assertEqual(st2["misses"], 5)
        self.assertEqual(st2["upstream_requests"], 5)
        self.assertEqual(http(s.aport, "POST", "/stats/reset")[0], 200)
        st3 = s.stats()
        self.assertEqual((st3["hits"], st3["misses"], st3["request_duration_hit_count"]), (0, 0, 0))
        c.close()

    def test_coalescing_figures(self):
        s = self.s
        cs = [Conn(s.port) for _ in range(20)]
        http(s.aport, "POST", "/stats/reset")
        for x in cs:
            x.s.sendall(b"HGETALL product:p-020\r\n")
        for x in cs:
            self.assertIsInstance(x.reply(), list)
            x.close()
        st = s.stats()
        self.assertEqual((st["upstream_requests"], st["coalesced"], st["fills_led"]), (1, 19, 1))
        self.assertEqual(st["fill_waiters_count"], 1)
        self.assertGreaterEqual(st["fill_waiters_p50"], 16)     # 20 waiters, in the 16..32 bucket

    def test_healthz_follows_redis_and_the_drain(self):
        # /healthz is /readyz: Redis down is degraded, not unready.
        s = self.s
        self.assertEqual(http(s.aport, "GET", "/healthz")[::2], (200, b"ok\n"))
        s.stop_redis()
        t0 = time.time()
        while True:
            st, _, body = http(s.aport, "GET", "/healthz")
            if body != b"ok\n" or time.time() - t0 > 1.0:
                break
            time.sleep(0.02)
        self.assertEqual(st, 200, body)
        self.assertTrue(body.startswith(b"ok, degraded: redis: "), body)
        s.start_redis()
        end = time.time() + 10
        while time.time() < end and http(s.aport, "GET", "/healthz")[2] != b"ok\n":
            time.sleep(0.1)
        self.assertEqual(http(s.aport, "GET", "/healthz")[::2], (200, b"ok\n"))
        # SIGTERM with a slow read in flight: 503 draining until exit.
        s.upstream_put("/_latency", b"1500")
        c = Conn(s.port)
        c.s.sendall(b"HGETALL product:p-030\r\n")
        time.sleep(0.2)
        s.daemon.send_signal(signal.SIGTERM)
        time.sleep(0.3)
        st, _, body = http(s.aport, "GET", "/healthz")
        self.assertEqual((st, body.strip()), (503, b"draining"))
        self.assertIsInstance(c.reply(), list)
        self.assertEqual(s.daemon.wait(10), 0)

    def test_http_rules(self):
        s = self.s
        self.assertEqual(http(s.aport, "GET", "/nope")[0], 404)
        st, hdrs, _ = http(s.aport, "POST", "/metrics")
        self.assertEqual((st, hdrs.get("allow")), (405, "GET"))
        st, hdrs, _ = http(s.aport, "GET", "/stats/reset")
        self.assertEqual((st, hdrs.get("allow")), (405, "POST"))
        st, hdrs, body = http(s.aport, "GET", "/")
        self.assertEqual(st, 200)
        self.assertTrue(hdrs["content-type"].startswith("text/html"))
        self.assertNotRegex(body.decode(), r'(src|href)="https?://')      # self-contained
        self.assertIn(b"<script>", body)

    def test_demo_read_and_stampede(self):
        s = self.s
        st, _, body = http(s.aport, "POST", "/demo/read?key=product:p-040")
        r = json.loads(body)
        self.assertEqual(st, 200)
        self.assertEqual(r["steps"][0]["reply"], -2)                      # not cached: a miss
        self.assertIn("p-040", r["steps"][1]["reply"])
        self.assertGreater(r["steps"][2]["reply"], 0)                     # now cached, TTL counting
        r = json.loads(http(s.aport, "POST", "/demo/read?key=product:p-040")[2])
        self.assertGreater(r["steps"][0]["reply"], 0)                     # a hit
        r = json.loads(http(s.aport, "POST", "/demo/update?key=product:p-040&field=stock&value=3")[2])
        self.assertEqual(r["steps"][0]["reply"], 1)
        c = Conn(s.port)
        self.assertEqual(c.cmd("HGET", "product:p-040", "stock"), b"3")
        c.close()
        r = json.loads(http(s.aport, "POST", "/demo/stampede?key=product:p-040&n=50")[2])
        self.assertEqual((r["readers"], r["upstream_reads"], r["errors"]), (50, 1, 0))
        self.assertEqual(http(s.aport, "POST", "/demo/read")[0], 400)        # no key
        # A key that is not UTF-8 is shown as "(binary)" (it once crashed the daemon).
        st, _, body = http(s.aport, "POST", "/demo/read?key=product:p-0%FF")
        self.assertEqual((st, json.loads(body)["key"]), (200, "(binary)"))
        self.assertIsNone(s.daemon.poll())

    def test_demo_stampedes_give_memory_back(self):
        """20 stampedes of 1000 readers on a 50-field record: the daemon's RSS
        stops growing after the first few (each reader's reply is turned into
        JSON and freed with the action), and the daemon exits cleanly, so that
        LeakSanitizer looks at it in the sanitizer build."""
        s = self.s
        record = {"field_%02d" % i: "value %d of a wide demo record" % i for i in range(50)}
        s.upstream_put("/_records/wide", json.dumps(record).encode())
        rss = []
        for _ in range(20):
            st, _, body = http(s.aport, "POST", "/demo/stampede?key=product:wide&n=1000", timeout=120)
            self.assertEqual(st, 200, body)
            r = json.loads(body)
            self.assertEqual((r["readers"], r["errors"]), (1000, 0))
            rss.append(vm_rss_kb(s.daemon.pid))
        print("demo stampedes: RSS after runs 1, 5, 10, 20: %d, %d, %d, %d KiB"
              % (rss[0], rss[4], rss[9], rss[19]), file=sys.stderr)
        if not SANITIZED:      # ASan's quarantine of freed blocks grows the RSS by itself
            self.assertLess(rss[19] - rss[4], 4096, "RSS per run (KiB): %s" % rss)
        s.daemon.send_signal(signal.SIGTERM)
        self.assertEqual(s.daemon.wait(30), 0)

    def test_cross_origin_posts_are_refused(self):
        # Before: any page the operator opened could reset the counters or
        # drive the demo (a cross-site POST was answered 200).
        s = self.s
        c = Conn(s.port)
        self.assertIsInstance(c.cmd("HGETALL", "product:p-001"), list)      # a miss: cached now
        cross = [{"Origin": "http://evil.example"}, {"Origin": "null"}, {"Origin": "http://t.evil.example"},
                 {"Origin": "http://t:1"}, {"Sec-Fetch-Site": "cross-site"}, {"Sec-Fetch-Site": "same-site"},
                 {"Sec-Fetch-Site": "cross-site", "Origin": "http://evil.example"},
                 {"Origin": "http://evil.example", "Authorization": "Bearer x"}]     # no requirepass to match
        for h in cross:
            for path in ("/stats/reset", "/demo/invalidate?key=product:p-001", "/demo/read?key=product:p-002"):
                st, _, body = http(s.aport, "POST", path, headers=h)
                self.assertEqual(st, 403, "%s with %s: %d %r" % (path, h, st, body))
        st = s.stats()
        self.assertEqual((st["misses"], st["upstream_requests"]), (1, 1))     # not reset; no demo read
        self.assertGreater(c.cmd("PTTL", "product:p-001"), 0)               # not invalidated
        self.assertIn(b"admin: refused a cross-origin POST /stats/reset (Origin http://evil.example)",
                      read_log(s.log))
        # The page's own origin (its Host, "t" here) may post, and so may
        # what is not a browser (neither header).
        for h in ({"Origin": "http://t"}, {"Origin": "HTTP://T"}, {"Origin": "https://t"},
                  {"Sec-Fetch-Site": "same-origin", "Origin": "http://t"}, {"Sec-Fetch-Site": "none"}, {}):
            self.assertEqual(http(s.aport, "POST", "/stats/reset", headers=h)[0], 200, h)
        self.assertEqual(s.stats()["misses"], 0)
        st, _, _ = http(s.aport, "POST", "/demo/invalidate?key=product:p-001", headers={"Origin": "http://t"})
        self.assertEqual(st, 200)
        self.assertEqual(c.cmd("PTTL", "product:p-001"), -2)
        c.close()


# The /metrics families of docs/admin.md, exactly: dashboards and alert
# rules are written against these names and label values.
METRIC_FAMILIES = {
    "process_cpu_seconds_total": "counter", "process_resident_memory_bytes": "gauge",
    "process_virtual_memory_bytes": "gauge", "process_open_fds": "gauge", "process_max_fds": "gauge",
    "process_start_time_seconds": "gauge",
    "cachasided_build_info": "gauge", "cachasided_config_last_reload_successful": "gauge",
    "cachasided_config_last_reload_timestamp_seconds": "gauge", "cachasided_restart_pending": "gauge",
    "cachasided_draining": "gauge",
    "cachasided_reads_total": "counter", "cachasided_read_duration_seconds": "histogram",
    "cachasided_fills_in_progress": "gauge", "cachasided_fills_led_total": "counter",
    "cachasided_fill_waits_total": "counter", "cachasided_fills_overtaken_total": "counter",
    "cachasided_early_refreshes_total": "counter", "cachasided_early_refresh_failures_total": "counter",
    "cachasided_breaker_state": "gauge", "cachasided_breaker_changes_total": "counter",
    "cachasided_breaker_refused_total": "counter",
    "cachasided_fill_waiters": "histogram",
    "cachasided_upstream_requests_total": "counter", "cachasided_upstream_duration_seconds": "histogram",
    "cachasided_upstream_response_bytes_total": "counter", "cachasided_upstream_connections": "gauge",
    "cachasided_upstream_busy": "gauge", "cachasided_upstream_queued": "gauge",
    "cachasided_tls_errors_total": "counter",
    "cachasided_redis_up": "gauge", "cachasided_degraded": "gauge", "cachasided_redis_duration_seconds": "histogram",
    "cachasided_redis_errors_total": "counter", "cachasided_redis_reconnects_total": "counter",
    "cachasided_redis_pending": "gauge", "cachasided_notice_channels": "gauge",
    "cachasided_notice_subscribes_total": "counter", "cachasided_notices_received_total": "counter",
    "cachasided_near_hits_total": "counter", "cachasided_near_misses_total": "counter",
    "cachasided_near_entries": "gauge", "cachasided_near_bytes": "gauge", "cachasided_near_evictions_total": "counter",
    "cachasided_near_invalidation_messages_total": "counter",
    "cachasided_clients_connected": "gauge", "cachasided_clients_rejected_total": "counter",
    "cachasided_client_disconnects_total": "counter", "cachasided_client_received_bytes_total": "counter",
    "cachasided_client_sent_bytes_total": "counter",
    "cachasided_invalidations_total": "counter", "cachasided_field_updates_total": "counter",
    "cachasided_invalidate_restarts_total": "counter",
}
LATENCY_LE = ["0.00005", "0.0001", "0.00025", "0.0005", "0.001", "0.0025", "0.005", "0.01", "0.05", "0.25", "1",
              "10", "+Inf"]
WAITERS_LE = [str(1 << i) for i in range(11)] + ["+Inf"]
OUTCOMES = {"hit", "stale", "negative", "miss", "coalesced", "error"}
TLS_REASONS = {"expired", "name_mismatch", "unknown_ca", "handshake_timeout", "protocol", "other"}
RESULTS = {"ok", "not_found", "status_5xx", "status_other", "timeout", "connect", "bad_body", "too_large"}

SAMPLE_RE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$')
LABEL_RE = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


class Exposition:
    """One scrape of /metrics: TYPE by family, samples by name and labels."""

    def __init__(self, port):
        st, hdrs, body = http(port, "GET", "/metrics")
        assert st == 200, st
        self.body = body
        self.types = {}
        self.samples = {}
        for line in body.decode().splitlines():
            if line.startswith("# TYPE "):
                _, _, fam, typ = line.split(" ")
                self.types[fam] = typ
            elif line and not line.startswith("#"):
                m = SAMPLE_RE.match(line)
                assert m, line
                labels = tuple(sorted(LABEL_RE.findall(m.group(2) or "")))
                self.samples[(m.group(1), labels)] = float(m.group(3))

    def get(self, name, **labels):
        return self.samples[(name, tuple(sorted(labels.items())))]

    def series(self, name):
        """{labels dict as a sorted tuple: value} of one sample name."""
        return {lb: v for (n, lb), v in self.samples.items() if n == name}

    def by(self, name, key, **match):
        """name's samples matching MATCH, summed by the value of label KEY."""
        out = {}
        for lb, v in self.series(name).items():
            d = dict(lb)
            if all(d.get(k) == w for k, w in match.items()):
                out[d[key]] = out.get(d[key], 0) + v
        return out


def delta(after, before):
    return {k: after.get(k, 0) - before.get(k, 0) for k in set(after) | set(before) if after.get(k, 0) != before.get(k, 0)}


class Metrics(unittest.TestCase):
    maxDiff = None

    def setUp(self):
        self.s = Stack()

    def tearDown(self):
        self.s.close()

    def test_exactly_the_documented_families_and_promtool_is_silent(self):
        s = self.s
        c = Conn(s.port)
        c.cmd("HGETALL", "product:p-001")
        c.cmd("HGETALL", "product:p-001")
        c.close()
        m = Exposition(s.aport)
        self.assertEqual(m.types, METRIC_FAMILIES)
        promtool = shutil.which("promtool")
        self.assertIsNotNone(promtool, "promtool is not installed (Debian package prometheus)")
        p = subprocess.run([promtool, "check", "metrics"], input=m.body, capture_output=True, timeout=30)
        self.assertEqual((p.returncode, p.stdout.decode() + p.stderr.decode()), (0, ""))
        # Labels from small fixed sets, every value present.
        self.assertEqual(set(m.by("cachasided_reads_total", "outcome", namespace="product")), OUTCOMES)
        self.assertEqual(set(m.by("cachasided_upstream_requests_total", "result", namespace="product")), RESULTS)
        self.assertEqual(set(m.by("cachasided_fill_waits_total", "woken", namespace="product")),
                         {"notice", "poll", "lock_timeout"})
        self.assertEqual(set(m.by("cachasided_client_disconnects_total", "reason")),
                         {"protocol_error", "output_limit", "idle_timeout", "killed"})
        for peer in ("redis", "upstream"):
            self.assertEqual(set(m.by("cachasided_tls_errors_total", "reason", peer=peer)), TLS_REASONS)
        self.assertEqual(m.get("cachasided_upstream_connections", host="127.0.0.1:%d" % s.uport), 1)
        self.assertEqual(list(m.series("cachasided_build_info").values()), [1])
        # Histograms: the 12 bounds and +Inf, cumulative, +Inf = _count.
        for fam, le in (("cachasided_read_duration_seconds", LATENCY_LE),
                        ("cachasided_upstream_duration_seconds", LATENCY_LE),
                        ("cachasided_redis_duration_seconds", LATENCY_LE), ("cachasided_fill_waiters", WAITERS_LE)):
            counts = m.series(fam + "_count")
            self.assertTrue(counts, fam)
            for lb, n in counts.items():
                rows = [(dict(b)["le"], v) for b, v in m.series(fam + "_bucket").items()
                        if tuple(x for x in b if x[0] != "le") == lb]
                self.assertEqual([r[0] for r in rows], le, fam)
                vals = [r[1] for r in rows]
                self.assertEqual(vals, sorted(vals), fam)
                self.assertEqual(vals[-1], n, fam)
        self.assertEqual(m.get("cachasided_read_duration_seconds_count", outcome="hit"), 1)
        self.assertEqual(m.get("cachasided_read_duration_seconds_bucket", outcome="hit", le="0.05"), 1)
        self.assertEqual(m.get("cachasided_read_duration_seconds_bucket", outcome="miss", le="0.05"), 0)   # 100 ms
        self.assertEqual(m.get("cachasided_read_duration_seconds_bucket", outcome="miss", le="0.25"), 1)

    def test_reads_by_final_outcome(self):
        s = self.s
        before = Exposition(s.aport)
        c = Conn(s.port)
        self.assertIsInstance(c.cmd("HGETALL", "product:p-001"), list)      # miss
        self.assertIsInstance(c.cmd("HGETALL", "product:p-001"), list)      # hit
        cs = [Conn(s.port) for _ in range(20)]
        for x in cs:                                                         # 1 miss, 19 coalesced
            x.s.sendall(b"HGETALL product:p-020\r\n")
        for x in cs:
            self.assertIsInstance(x.reply(), list)
            x.close()
        self.assertEqual(c.cmd("HGETALL", "product:nope"), [])              # miss (not found)
        self.assertEqual(c.cmd("HGETALL", "product:nope"), [])              # negative
        s.upstream_put("/_status/p-003", b"503")
        self.assertTrue(c.cmd("HGETALL", "product:p-003").startswith("-UPSTREAM status 503"))   # error
        c.close()
        after = Exposition(s.aport)
        reads = delta(after.by("cachasided_reads_total", "outcome", namespace="product"),
                      before.by("cachasided_reads_total", "outcome", namespace="product"))
        self.assertEqual(reads, {"hit": 1, "miss": 3, "coalesced": 19, "negative": 1, "error": 1})
        # Each read once: the histogram counted the same reads.
        self.assertEqual(delta(after.by("cachasided_read_duration_seconds_count", "outcome"),
                               before.by("cachasided_read_duration_seconds_count", "outcome")), reads)
        up = delta(after.by("cachasided_upstream_requests_total", "result", namespace="product"),
                   before.by("cachasided_upstream_requests_total", "result", namespace="product"))
        self.assertEqual(up, {"ok": 2, "not_found": 1, "status_5xx": 1})
        self.assertEqual(after.get("cachasided_fills_led_total", namespace="product")
                         - before.get("cachasided_fills_led_total", namespace="product"), 4)
        # The burst's fill answered 20 readers: above 16, within 32.
        self.assertEqual(after.get("cachasided_fill_waiters_bucket", le="16")
                         - before.get("cachasided_fill_waiters_bucket", le="16"), 3)
        self.assertEqual(after.get("cachasided_fill_waiters_bucket", le="32")
                         - before.get("cachasided_fill_waiters_bucket", le="32"), 4)

    def test_upstream_requests_by_result(self):
        # Namespaces of their own: an upstream port nothing listens on, a
        # short timeout, a small body limit.
        self.s.close()
        closed, uport = free_port(), free_port()
        s = self.s = Stack(uport=uport, namespaces={
            "gone": {"upstream": "http://127.0.0.1:%d/products/{id}" % closed},
            "slow": {"upstream": "http://127.0.0.1:%d/products/{id}" % uport, "upstream_timeout_ms": 300},
            "small": {"upstream": "http://127.0.0.1:%d/products/{id}" % uport, "max_body_bytes": 64},
        })
        body = json.dumps({"name": "x" * 200}).encode()
        s.upstream_put("/_records/p-070", body)
        s.upstream_put("/_records/p-060", b"[1, 2]")
        s.upstream_put("/_status/p-061", b"418")
        s.upstream_put("/_status/p-062", b"502")
        s.upstream_put("/_delay/p-050", b"1500")
        c = Conn(s.port)
        self.assertIsInstance(c.cmd("HGETALL", "product:p-070"), list)
        self.assertEqual(c.cmd("HGETALL", "product:nope"), [])
        for key, err in (("product:p-060", "-UPSTREAM bad body"), ("product:p-061", "-UPSTREAM status 418"),
                         ("product:p-062", "-UPSTREAM status 502"), ("slow:p-050", "-UPSTREAM timeout"),
                         ("gone:p-001", "-UPSTREAM unreachable"), ("small:p-070", "-UPSTREAM body too large")):
            got = c.cmd("HGETALL", key)
            self.assertTrue(isinstance(got, str) and got.startswith(err), (key, got))
        c.close()
        m = Exposition(s.aport)
        want = {("product", "ok"): 1, ("product", "not_found"): 1, ("product", "bad_body"): 1,
                ("product", "status_other"): 1, ("product", "status_5xx"): 1, ("slow", "timeout"): 1,
                ("gone", "connect"): 1, ("small", "too_large"): 1}
        got = {(dict(lb)["namespace"], dict(lb)["result"]): v
               for lb, v in m.series("cachasided_upstream_requests_total").items() if v}
        self.assertEqual(got, want)
        self.assertEqual(m.get("cachasided_upstream_duration_seconds_count", namespace="slow"), 1)
        slow_le = m.get("cachasided_upstream_duration_seconds_bucket", namespace="slow", le="0.25")
        self.assertEqual(slow_le, 0)                                         # waited its 300 ms
        # Body bytes: the record's, then the bad body and the two error pages.
        got_bytes = m.get("cachasided_upstream_response_bytes_total", namespace="product")
        self.assertGreaterEqual(got_bytes, len(body) + len(b"[1, 2]"))
        self.assertEqual(m.get("cachasided_upstream_response_bytes_total", namespace="gone"), 0)

    def test_process_figures_from_proc(self):
        s = self.s
        m = Exposition(s.aport)
        pid = s.daemon.pid
        rss = vm_rss_kb(pid) * 1024
        self.assertLess(abs(m.get("process_resident_memory_bytes") - rss), rss / 2)
        self.assertGreaterEqual(m.get("process_virtual_memory_bytes"), m.get("process_resident_memory_bytes"))
        fds = len(os.listdir("/proc/%d/fd" % pid))
        self.assertLessEqual(abs(m.get("process_open_fds") - fds), 2)
        with open("/proc/%d/limits" % pid) as f:
            soft = [line.split()[3] for line in f if line.startswith("Max open files")][0]
        self.assertEqual(m.get("process_max_fds"), float(soft))
        self.assertLess(abs(m.get("process_start_time_seconds") - os.stat("/proc/%d" % pid).st_mtime), 30)
        self.assertLessEqual(abs(m.get("process_start_time_seconds") - time.time()), 60)
        tck = os.sysconf("SC_CLK_TCK")
        self.assertLessEqual(abs(m.get("process_cpu_seconds_total") - cpu_ticks(pid) / tck), 0.5)

    def test_clients_bytes_and_disconnects(self):
        s = self.s
        before = Exposition(s.aport)
        c = Conn(s.port)
        self.assertEqual(c.cmd("PING"), "+PONG")
        c.close()
        bad = socket.create_connection(("127.0.0.1", s.port), 5)
        bad.sendall(b"*x\r\n")
        self.assertIn(b"protocol error", bad.recv(4096))
        bad.close()
        victim, killer = Conn(s.port), Conn(s.port)
        vid = victim.cmd("CLIENT", "ID")
        self.assertEqual(killer.cmd("CLIENT", "KILL", "ID", str(vid)), 1)
        killer.close()
        victim.close()
        after = Exposition(s.aport)
        self.assertEqual(delta(after.by("cachasided_client_disconnects_total", "reason"),
                               before.by("cachasided_client_disconnects_total", "reason")),
                         {"protocol_error": 1, "killed": 1})
        sent_in = after.get("cachasided_client_received_bytes_total") - before.get("cachasided_client_received_bytes_total")
        sent_out = after.get("cachasided_client_sent_bytes_total") - before.get("cachasided_client_sent_bytes_total")
        self.assertGreaterEqual(sent_in, len(b"*1\r\n$4\r\nPING\r\n") + 4)
        self.assertGreaterEqual(sent_out, len(b"+PONG\r\n") + len(b":1\r\n"))

    def test_redis_down_degraded_and_draining(self):
        s = self.s
        m = Exposition(s.aport)
        self.assertEqual((m.get("cachasided_redis_up"), m.get("cachasided_degraded"), m.get("cachasided_draining")),
                         (1, 0, 0))
        s.stop_redis()
        end = time.time() + 5
        while time.time() < end and Exposition(s.aport).get("cachasided_redis_up") != 0:
            time.sleep(0.05)
        m = Exposition(s.aport)
        self.assertEqual((m.get("cachasided_redis_up"), m.get("cachasided_degraded")), (0, 1))
        s.upstream_put("/_latency", b"1500")
        c = Conn(s.port)
        c.s.sendall(b"HGETALL product:p-030\r\n")
        time.sleep(0.2)
        s.daemon.send_signal(signal.SIGTERM)
        time.sleep(0.3)
        self.assertEqual(Exposition(s.aport).get("cachasided_draining"), 1)
        self.assertIsInstance(c.reply(), list)
        self.assertEqual(s.daemon.wait(10), 0)
        c.close()

    def test_reloads_and_a_pending_restart(self):
        s = self.s
        m = Exposition(s.aport)
        self.assertEqual((m.get("cachasided_config_last_reload_successful"),
                          m.get("cachasided_config_last_reload_timestamp_seconds"),
                          m.get("cachasided_restart_pending")), (1, 0, 0))
        with open(s.conf) as f:
            good = f.read()

        def reload(text):
            was = Exposition(s.aport).get("cachasided_config_last_reload_timestamp_seconds")
            with open(s.conf, "w") as f:
                f.write(text)
            s.daemon.send_signal(signal.SIGHUP)
            end = time.time() + 5
            while time.time() < end:
                m = Exposition(s.aport)
                if m.get("cachasided_config_last_reload_timestamp_seconds") != was:
                    return m
                time.sleep(0.05)
            self.fail("no reload seen")

        t0 = time.time()
        m = reload(good.replace("[redis]\n", "[redis]\ncommand_timeout_ms = 700\n"))
        self.assertEqual((m.get("cachasided_config_last_reload_successful"), m.get("cachasided_restart_pending")),
                         (1, 1))
        self.assertLess(abs(m.get("cachasided_config_last_reload_timestamp_seconds") - t0), 5)
        self.assertIn(b"command_timeout_ms changed", read_log(s.log))
        # Put back, the running value was never changed: still pending until
        # a restart, and said so on this reload too.
        m = reload(good)
        self.assertEqual((m.get("cachasided_config_last_reload_successful"), m.get("cachasided_restart_pending")),
                         (1, 1))
        self.assertIn(b"a restart is still pending: [redis] command_timeout_ms", read_log(s.log))
        m = reload(good + "[bogus\n")
        self.assertEqual((m.get("cachasided_config_last_reload_successful"), m.get("cachasided_restart_pending")),
                         (0, 1))
        self.assertEqual(s.stats()["restart_pending"], 1)


class AdminLimits(unittest.TestCase):
    """The admin port cannot take what the client port needs: a cap on its
    connections, and a pause (not a busy loop) when out of descriptors."""

    CAP = 64        # CS_ADMIN_MAX_CONNS, docs/admin.md

    def test_out_of_descriptors_the_admin_port_pauses(self):
        # Before: evhttp's listener failed accept() in a loop, 100% CPU and
        # some 20 MB of "Too many open files" a second.
        s = Stack(nofile=40)
        held = []
        try:
            for _ in range(80):
                held.append(socket.create_connection(("127.0.0.1", s.aport), 5))
            end = time.time() + 5
            while time.time() < end and b"Too many open files" not in read_log(s.log):
                time.sleep(0.05)
            self.assertIn(b"Too many open files", read_log(s.log), "the daemon never ran out")
            lines0, cpu0, t0 = read_log(s.log).count(b"\n"), cpu_ticks(s.daemon.pid), time.time()
            time.sleep(2)
            ticks, lines = cpu_ticks(s.daemon.pid) - cpu0, read_log(s.log).count(b"\n") - lines0
            secs = time.time() - t0
            # Generous: the machine is shared. A paused daemon uses next to nothing.
            self.assertLess(ticks, os.sysconf("SC_CLK_TCK") * secs / 4,
                            "%d ticks of CPU in %.1f s out of descriptors" % (ticks, secs))
            self.assertLess(lines, 10, "%d log lines in %.1f s out of descriptors" % (lines, secs))
            self.assertIn(b"admin: accept: Too many open files: not accepting", read_log(s.log))
            for c in held:
                c.close()
            held = []
            # Both ports answer again.
            end = time.time() + 5
            while time.time() < end:
                try:
                    if http(s.aport, "GET", "/healthz", timeout=1)[0] == 200:
                        break
                except (OSError, IndexError):
                    pass
                time.sleep(0.1)
            self.assertEqual(http(s.aport, "GET", "/healthz")[0], 200)
            c = Conn(s.port)
            self.assertEqual(c.cmd("PING"), "+PONG")
            c.close()
        finally:
            for c in held:
                c.close()
            s.close()

    def test_connections_beyond_the_cap_are_refused(self):
        s = Stack()
        held = []
        try:
            for _ in range(self.CAP):
                held.append(socket.create_connection(("127.0.0.1", s.aport), 5))
            time.sleep(0.3)
            # One more: a 503 at once, and closed.
            extra = socket.create_connection(("127.0.0.1", s.aport), 5)
            extra.settimeout(2)
            t0, data = time.time(), b""
            try:
                while True:
                    d = extra.recv(4096)
                    if not d:
                        break
                    data += d
            except socket.timeout:
                pass
            extra.close()
            self.assertTrue(data.startswith(b"HTTP/1.1 503 "), "connection %d: %r" % (self.CAP + 1, data[:200]))
            self.assertIn(b"too many admin connections", data)
            self.assertLess(time.time() - t0, 1.5)
            # The ones it has are all open and served.
            self.assertEqual(select.select(held, [], [], 0.3)[0], [], "a held admin connection was closed")
            held[0].sendall(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
            self.assertTrue(held[0].recv(4096).startswith(b"HTTP/1.1 200 "))
            # The client port is not affected.
            c = Conn(s.port)
            self.assertEqual(c.cmd("PING"), "+PONG")
            self.assertIsInstance(c.cmd("HGETALL", "product:p-001"), list)
            c.close()
            self.assertIn(b"admin: connection refused: 64 admin connections open", read_log(s.log))
            # Room again once they close.
            for h in held:
                h.close()
            held = []
            end = time.time() + 5
            while time.time() < end and http(s.aport, "GET", "/healthz")[0] != 200:
                time.sleep(0.05)
            self.assertEqual(http(s.aport, "GET", "/healthz")[0], 200)
            again = [socket.create_connection(("127.0.0.1", s.aport), 5) for _ in range(self.CAP - 1)]
            self.assertEqual(http(s.aport, "GET", "/healthz")[0], 200)      # the 64th
            for h in again:
                h.close()
        finally:
            for h in held:
                h.close()
            s.close()


class AdminAuth(unittest.TestCase):
    def setUp(self):
        self.s = Stack(server={"requirepass": "s3cret"})

    def tearDown(self):
        self.s.close()

    def test_requirepass_protects_all_but_healthz_and_metrics(self):
        a = self.s.aport
        self.assertEqual(http(a, "GET", "/healthz")[0], 200)
        self.assertEqual(http(a, "GET", "/metrics")[0], 200)
        st, hdrs, _ = http(a, "GET", "/stats")
        self.assertEqual(st, 401)
        self.assertIn("Basic", hdrs.get("www-authenticate", ""))
        self.assertEqual(http(a, "GET", "/", )[0], 401)
        self.assertEqual(http(a, "POST", "/stats/reset")[0], 401)
        self.assertEqual(http(a, "POST", "/demo/read?key=product:p-001")[0], 401)
        good = "Basic " + base64.b64encode(b"anyone:s3cret").decode()
        bad = "Basic " + base64.b64encode(b"anyone:wrong").decode()
        self.assertEqual(http(a, "GET", "/stats", headers={"Authorization": good})[0], 200)
        self.assertEqual(http(a, "GET", "/stats", headers={"Authorization": bad})[0], 401)
        self.assertEqual(http(a, "GET", "/stats", headers={"Authorization": "Bearer s3cret"})[0], 200)
        self.assertEqual(http(a, "GET", "/stats", headers={"Authorization": "Bearer s3cre"})[0], 401)
        # The demo authenticates its own client connections.
        st, _, body = http(a, "POST", "/demo/read?key=product:p-001", headers={"Authorization": good})
        self.assertEqual(st, 200)
        self.assertIn("p-001", json.loads(body)["steps"][1]["reply"])

    def test_a_bearer_token_may_post_from_anywhere_basic_may_not(self):
        a = self.s.aport
        evil = {"Origin": "http://evil.example", "Sec-Fetch-Site": "cross-site"}
        basic = "Basic " + base64.b64encode(b"anyone:s3cret").decode()
        self.assertEqual(http(a, "POST", "/stats/reset", headers=dict(evil, Authorization="Bearer s3cret"))[0], 200)
        self.assertEqual(http(a, "POST", "/stats/reset", headers=dict(evil, Authorization="Bearer wrong"))[0], 403)
        # A browser that has Basic credentials sends them on a cross-site post too.
        self.assertEqual(http(a, "POST", "/stats/reset", headers=dict(evil, Authorization=basic))[0], 403)
        self.assertEqual(http(a, "POST", "/stats/reset", headers={"Authorization": basic, "Origin": "http://t"})[0], 200)
        self.assertEqual(http(a, "POST", "/stats/reset", headers={"Authorization": basic})[0], 200)


class AdminUnixAndOff(unittest.TestCase):
    def test_unix_socket_and_demo_off(self):
        tmp = tempfile.mkdtemp(prefix="cachasided-admin-unix-")
        path = os.path.join(tmp, "admin.sock")
        port = free_port()
        conf = os.path.join(tmp, "c.ini")
        with open(conf, "w") as f:
            f.write("[server]\nlisten = 127.0.0.1:%d\nadmin_listen = %s\n[redis]\nport = %d\n"
                    "[namespace:product]\nupstream = http://127.0.0.1:9/p/{id}\n" % (port, path, free_port()))
        d = subprocess.Popen([DAEMON, "-c", conf], stderr=subprocess.DEVNULL)
        try:
            wait_port(port, d, "cachasided")
            st, _, body = http(0, "GET", "/healthz", unix=path)
            self.assertEqual(st, 200)                       # no Redis on that port: degraded
            self.assertTrue(body.startswith(b"ok, degraded: redis: "), body)
            self.assertEqual(http(0, "POST", "/demo/read?key=product:x", unix=path)[0], 404)  # admin_demo off
        finally:
            d.kill()
            d.wait()
            shutil.rmtree(tmp, ignore_errors=True)


class Probes(unittest.TestCase):
    """/livez restarts a wedged daemon, /readyz takes one out of rotation
    that cannot answer reads, systemd's watchdog (docs/admin.md)."""

    def test_redis_down_is_ready_degraded_and_redis_and_upstream_down_is_not(self):
        s = Stack()
        try:
            s.stop_redis()
            end = time.time() + 5
            while time.time() < end and http(s.aport, "GET", "/readyz")[2] == b"ok\n":
                time.sleep(0.02)
            st, _, body = http(s.aport, "GET", "/readyz")
            self.assertEqual(st, 200, body)
            self.assertRegex(body.decode(), r"^ok, degraded: redis: [^\n]+\n$")
            self.assertEqual(http(s.aport, "GET", "/livez")[::2], (200, b"ok\n"))
            c = Conn(s.port)
            self.assertIn(b"p-001", b"".join(c.cmd("HGETALL", "product:p-001")))     # read from the upstream
            # The upstream goes too: each read fails to connect; after three in a row, not ready.
            s.stop_upstream()
            for i in range(2, 5):
                self.assertRegex(c.cmd("HGETALL", "product:p-%03d" % i), r"^-UPSTREAM unreachable")
            st, _, body = http(s.aport, "GET", "/readyz")
            self.assertEqual(st, 503, body)
            self.assertRegex(body.decode(), r"^redis: [^;\n]+; upstream 127\.0\.0\.1:%d: its last 3 fetches failed "
                             r"\(the last: connection failed\)\n$" % s.uport)
            self.assertEqual(http(s.aport, "GET", "/healthz")[:1], (503,))
            self.assertEqual(http(s.aport, "GET", "/livez")[::2], (200, b"ok\n"))     # not a reason to restart
            # A read that gets through again makes it ready.
            s.start_upstream()
            self.assertIsInstance(c.cmd("HGETALL", "product:p-005"), list)
            st, _, body = http(s.aport, "GET", "/readyz")
            self.assertEqual(st, 200, body)
            self.assertTrue(body.startswith(b"ok, degraded: "), body)
            c.close()
        finally:
            s.close()

    def test_draining_is_unready_but_live(self):
        s = Stack()
        try:
            s.upstream_put("/_latency", b"1500")
            c = Conn(s.port)
            c.s.sendall(b"HGETALL product:p-030\r\n")
            time.sleep(0.2)
            s.daemon.send_signal(signal.SIGTERM)
            time.sleep(0.3)
            self.assertEqual(http(s.aport, "GET", "/readyz")[::2], (503, b"draining\n"))
            self.assertEqual(http(s.aport, "GET", "/livez")[::2], (200, b"ok\n"))
            self.assertIsInstance(c.reply(), list)
            self.assertEqual(s.daemon.wait(10), 0)
        finally:
            s.close()

    def notices(self, env, secs):
        """The datagrams a daemon started with ENV sends to its NOTIFY_SOCKET
        in SECS once it is ready."""
        tmp = tempfile.mkdtemp(prefix="cachasided-notify-")
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        path = os.path.join(tmp, "notify")
        sock.bind(path)
        s = None
        try:
            s = Stack(env=dict(env, NOTIFY_SOCKET=path))
            sock.setblocking(False)
            try:
                while True:             # what came during start-up
                    sock.recv(4096)
            except BlockingIOError:
                pass
            sock.setblocking(True)
            got, end = [], time.time() + secs
            while time.time() < end:
                r, _, _ = select.select([sock], [], [], max(0.0, end - time.time()))
                if r:
                    got.append(sock.recv(4096))
            return got
        finally:
            if s:
                s.close()
            sock.close()
            shutil.rmtree(tmp, ignore_errors=True)

    def test_watchdog_pings_at_half_the_interval(self):
        got = self.notices({"WATCHDOG_USEC": "400000"}, 2.0)
        pings = got.count(b"WATCHDOG=1")
        # One every 200 ms: 10 in 2 s; generous on a loaded machine.
        self.assertGreaterEqual(pings, 5, got)
        self.assertLessEqual(pings, 14, got)
        # systemd's convention: WATCHDOG_PID naming another process means not ours.
        got = self.notices({"WATCHDOG_USEC": "400000", "WATCHDOG_PID": "1"}, 1.0)
        self.assertNotIn(b"WATCHDOG=1", got)


class Operations(unittest.TestCase):
    """What an operator meets besides counters: journald lines, repeated
    errors rate-limited, and -t catching what would only fail later."""

    def test_journal_priority_prefix_and_rate_limit(self):
        tmp = tempfile.mkdtemp(prefix="cachasided-ops-")
        try:
            rport, uport, port = free_port(), free_port(), free_port()
            redis = subprocess.Popen([REDIS, "--port", str(rport), "--bind", "127.0.0.1", "--save", "",
                                      "--appendonly", "no"], stdout=subprocess.DEVNULL)
            up = subprocess.Popen([UPSTREAM, "-p", str(uport), "-g", "10", "-q", "-s", "p-001=503"],
                                  stderr=subprocess.DEVNULL)
            conf = os.path.join(tmp, "c.ini")
            with open(conf, "w") as f:
                f.write("[server]\nlisten = 127.0.0.1:%d\nadmin_listen =\nlog_level = info\n[redis]\nport = %d\n"
                        "[namespace:product]\nupstream = http://127.0.0.1:%d/p/{id}\n" % (port, rport, uport))
            log = os.path.join(tmp, "journal.log")
            with open(log, "w") as lf:
                st = os.fstat(lf.fileno())
                env = dict(os.environ, JOURNAL_STREAM="%d:%d" % (st.st_dev, st.st_ino))
                d = subprocess.Popen([DAEMON, "-c", conf], stderr=lf, env=env)
            try:
                wait_port(rport, redis, "redis-server")
                wait_port(uport, up, "upstream")
                wait_port(port, d, "cachasided")
                c = Conn(port)
                for _ in range(40):
                    self.assertTrue(c.cmd("HGETALL", "product:p-001").startswith("-UPSTREAM status 503"))
                c.close()
                d.send_signal(signal.SIGTERM)
                self.assertEqual(d.wait(10), 0)
            finally:
                for p in (d, up, redis):
                    if p.poll() is None:
                        p.kill()
                        p.wait()
            with open(log) as lf:
                lines = lf.read().splitlines()
            self.assertTrue(lines and all(re.match(r"<[3-7]>(debug|info|notice|warning|error) ", l) for l in lines),
                            "\n".join(lines[:5]))
            self.assertFalse(any(re.search(r"\d{4}-\d\d-\d\dT", l) for l in lines), "journald adds the time")
            self.assertTrue(any(l.startswith("<5>notice cachasided") for l in lines))
            status = [l for l in lines if "status 503" in l]
            self.assertLess(len(status), 5, "40 identical upstream errors logged %d times" % len(status))
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def test_an_outage_is_logged_at_warning(self):
        # journalctl -p warning must show an upstream or Redis outage.
        s = Stack()
        try:
            c = Conn(s.port)
            s.upstream_put("/_status/p-001", b"503")
            for _ in range(2):      # the second is held back, then written as it was
                self.assertTrue(c.cmd("HGETALL", "product:p-001").startswith("-UPSTREAM status 503"))
            s.stop_upstream()
            for i in (2, 3):
                self.assertTrue(c.cmd("HGETALL", "product:p-%03d" % i).startswith("-UPSTREAM unreachable"))
            s.stop_redis()
            end = time.time() + 5
            while time.time() < end and http(s.aport, "GET", "/readyz")[2] == b"ok\n":
                time.sleep(0.02)
            self.assertTrue(c.cmd("HGETALL", "product:p-004").startswith("-UPSTREAM unreachable"))
            c.close()
            time.sleep(6.5)         # the rate limit's 5 s window ends
            s.daemon.send_signal(signal.SIGTERM)
            self.assertEqual(s.daemon.wait(10), 0)
            lines = read_log(s.log).decode().splitlines()
            level = lambda l: l.split(" ", 2)[1]
            up = [l for l in lines if "upstream 127.0.0.1:%d" % s.uport in l]
            self.assertEqual([level(l) for l in up], ["warning"] * len(up), "\n".join(up))
            self.assertEqual(len([l for l in up if l.endswith("status 503")]), 2, "\n".join(up))
            self.assertTrue(any("connection failed" in l for l in up), "\n".join(up))
            self.assertTrue(any(re.match(r"\S+ warning redis: ", l) for l in lines), "\n".join(lines))
            self.assertFalse([l for l in lines if "repeated 1 times" in l])
            self.assertFalse([l for l in lines if " trace " in l])
        finally:
            s.close()

    def test_debug_traces_a_miss_by_its_key(self):
        s = Stack(args=["-l", "debug"])
        try:
            c = Conn(s.port)
            self.assertIsInstance(c.cmd("HGETALL", "product:p-007"), list)
            self.assertIsInstance(c.cmd("HGETALL", "product:p-007"), list)
            c.close()
            s.daemon.send_signal(signal.SIGTERM)
            self.assertEqual(s.daemon.wait(10), 0)
            lines = read_log(s.log).decode().splitlines()
            parse = [re.match(r"\S+ debug trace (\S+): parse: hgetall product:p-007 \(namespace product\)$", l)
                     for l in lines]
            keys = [m.group(1) for m in parse if m]
            self.assertEqual(len(keys), 2, "\n".join(lines))
            self.assertIn("p-007", keys[0])
            steps = [l.split(keys[0] + ": ", 1)[1].split(":")[0] for l in lines if " debug trace %s: " % keys[0] in l]
            self.assertEqual(steps, ["parse", "redis read", "lock", "fetch", "fill", "wake", "parse", "redis read"],
                             "\n".join(lines))
            trace = [l for l in lines if " debug trace %s: " % keys[0] in l]
            self.assertTrue(trace[1].endswith("redis read: miss") and trace[-1].endswith("redis read: hit"), trace)
        finally:
            s.close()

    def test_check_finds_what_fails_later(self):
        tmp = tempfile.mkdtemp(prefix="cachasided-ops-")
        try:
            conf = os.path.join(tmp, "c.ini")
            long_path = "/run/" + "x" * 120 + ".sock"
            with open(conf, "w") as f:
                f.write("[server]\nlisten = 127.0.0.1:7379\nunix_socket = %s\n"
                        "[namespace:product]\nupstream = http://127.0.0.1:9/p/{id}\n" % long_path)
            p = subprocess.run([DAEMON, "-t", "-c", conf], capture_output=True, text=True, timeout=10)
            self.assertEqual(p.returncode, 1)
            self.assertRegex(p.stderr, r"c\.ini:3: 'unix_socket' path is \d+ bytes")
            with open(conf, "w") as f:
                f.write("[server]\nshutdown_grace_ms = 28000\n"
                        "[namespace:product]\nupstream = http://127.0.0.1:9/p/{id}\n")
            p = subprocess.run([DAEMON, "-t", "-c", conf], capture_output=True, text=True, timeout=10)
            self.assertEqual(p.returncode, 0, p.stderr)
            self.assertRegex(p.stderr, r"c\.ini:2: shutdown_grace_ms = 28000 .*TimeoutStopSec")
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


class Dashboard(unittest.TestCase):
    """The page in a real browser: a 50-reader stampede shows one upstream
    read, and what a link puts in the page is shown, never run."""

    def browser(self, s):
        """Headless Chromium's command line, its profile in S's directory."""
        browser = shutil.which("chromium") or shutil.which("chromium-browser")
        self.assertIsNotNone(browser, "chromium is not installed (Debian package chromium): "
                                      "the dashboard test needs a real browser")
        return [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--user-data-dir=" + os.path.join(s.tmp, "profile"), "--virtual-time-budget=8000"]

    def test_stampede_in_chromium(self):
        s = Stack()
        try:
            url = "http://127.0.0.1:%d/?run=stampede&n=50&key=product:p-060" % s.aport
            args = self.browser(s)
            p = subprocess.run(args + ["--dump-dom", url], capture_output=True, timeout=90)
            dom = p.stdout.decode(errors="replace")
            self.assertIn('id="stampede-result"', dom, "chromium did not render the page: " + p.stderr.decode()[-800:])
            m = re.search(r'id="stampede-result"[^>]*data-upstream="(\d+)"', dom) or \
                re.search(r'data-upstream="(\d+)"[^>]*id="stampede-result"', dom)
            self.assertIsNotNone(m, "no stampede result in the page:\n" + dom[-2000:])
            self.assertEqual(m.group(1), "1")
            self.assertRegex(dom, r'data-readers="50"')
            self.assertEqual(s.stats()["upstream_requests"], 1)
            shot = os.environ.get("CACHASIDED_SCREENSHOT") or os.path.join(s.tmp, "dashboard.png")
            p = subprocess.run(args + ["--window-size=1280,900", "--screenshot=" + shot,
                                       "http://127.0.0.1:%d/?run=stampede&n=50&key=product:p-061" % s.aport],
                               capture_output=True, timeout=90)
            self.assertTrue(os.path.getsize(shot) > 10000, "no screenshot: " + p.stderr.decode()[-500:])
        finally:
            s.close()

    def test_a_link_cannot_put_markup_in_the_page(self):
        # Before: the read's error, which names the key, went into the page
        # as HTML, and this link ran its script in the operator's browser.
        s = Stack()
        try:
            key = "<img src=x onerror=\"document.title='pwned'\">:1"
            url = "http://127.0.0.1:%d/?run=read&key=%s" % (s.aport, urllib.parse.quote(key, safe=""))
            p = subprocess.run(self.browser(s) + ["--dump-dom", url], capture_output=True, timeout=90)
            dom = p.stdout.decode(errors="replace")
            m = re.search(r'id="read-result"[^>]*>(.*?)</div>', dom, re.S)
            self.assertIsNotNone(m, "chromium did not render the page: " + p.stderr.decode()[-800:])
            self.assertIn("unknown namespace", m.group(1), "the read did not run")
            self.assertIn("&lt;img src=x onerror=", m.group(1))         # shown, as text
            self.assertNotIn("<img", dom)
            self.assertIn("<title>cachasided</title>", dom)
        finally:
            s.close()


if __name__ == "__main__":
    unittest.main(verbosity=2)
