#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-3-Clause
"""TLS to Redis ([redis] tls, docs/configuration.md), run by `make check`.

Real TLS redis-servers (--tls-port, --port 0) with a test CA and
certificates made here by the openssl command: one for 127.0.0.1
(subjectAltName IP), one for another name, an expired one, a client
certificate, and a second CA that signed none of them.  Checks what an
operator sees: reads that miss, fill and hit through TLS, DEL, fill notices
on the TLS subscriber link between two daemons; and for a wrong CA, a wrong
name, an expired certificate, a plaintext Redis with tls = yes, a TLS Redis
with tls = no, and a Redis that wants a client certificate when none is
given: the reason in /readyz and in the log, and nothing cached (reads go
to the upstream); each reason counted on /metrics (an HTTP server on the
TLS port too: "protocol") and logged once per link within 10 s however
often the reconnects fail.  Sentinel (tls-replication) and a two-node
Cluster (tls-cluster) over TLS.  A bad TLS file is refused by -t with
FILE:LINE.  SIGHUP: a renewed CA file used by the next connection, a bad
one refusing the reload while the link serves on.  close_notify at
shutdown, as Redis's verbose log tells.
"""
import json
import re
import os
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import time
import unittest

sys.dont_write_bytecode = True     # keep the source tree clean
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cstest import Conn, daemon_ini, free_port, wait_port  # noqa: E402
from test_admin import http  # noqa: E402

DAEMON = os.environ.get("CACHASIDED_BIN", "src/cachasided")
UPSTREAM = os.environ.get("CACHASIDED_UPSTREAM_BIN", "tests/cachasided-example-upstream")
REDIS = os.environ.get("REDIS_SERVER") or shutil.which("redis-server") or "redis-server"
OPENSSL = shutil.which("openssl") or "openssl"

TMP = None


def sh(*args):
    subprocess.run([OPENSSL] + list(args), cwd=TMP, check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)


def cert(name, ca, san, days="30"):
    """NAME.key and NAME.crt signed by CA, with subjectAltName SAN."""
    sh("req", "-new", "-nodes", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
       "-keyout", name + ".key", "-out", name + ".csr", "-subj", "/CN=" + name)
    with open(os.path.join(TMP, name + ".ext"), "w") as f:
        f.write("subjectAltName=%s\n" % san)
    sh("x509", "-req", "-in", name + ".csr", "-CA", ca + ".crt", "-CAkey", ca + ".key", "-CAcreateserial",
       "-out", name + ".crt", "-days", days, "-extfile", name + ".ext")


def setUpModule():
    global TMP
    TMP = tempfile.mkdtemp(prefix="cachasided-tls-")
    for ca in ("ca", "otherca"):
        sh("req", "-x509", "-new", "-nodes", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
           "-keyout", ca + ".key", "-out", ca + ".crt", "-days", "30", "-subj", "/CN=" + ca)
    cert("server", "ca", "IP:127.0.0.1,DNS:redis.test")
    cert("wrongname", "ca", "DNS:elsewhere.test")
    cert("expired", "ca", "IP:127.0.0.1", days="0")     # not after = not before: expired a second later
    cert("client", "ca", "DNS:client.test")
    # A rotation: a new CA, and the server certificate it signs.
    sh("req", "-x509", "-new", "-nodes", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
       "-keyout", "newca.key", "-out", "newca.crt", "-days", "30", "-subj", "/CN=newca")
    cert("newserver", "newca", "IP:127.0.0.1,DNS:redis.test")
    time.sleep(1.1)


def tearDownModule():
    if os.environ.get("CACHASIDED_KEEP_TMP"):
        print("kept", TMP)
    else:
        shutil.rmtree(TMP, ignore_errors=True)


def f(name):
    return os.path.join(TMP, name)


class TlsConn(Conn):
    """A RESP connection to a TLS Redis, trusting the test CA."""

    def __init__(self, port, timeout=10.0):
        ctx = ssl.create_default_context(cafile=f("ca.crt"))
        ctx.check_hostname = False      # whatever certificate the test gave it
        ctx.verify_mode = ssl.CERT_NONE
        ctx.load_cert_chain(f("client.crt"), f("client.key"))
        Conn.__init__(self, port, timeout)
        self.s = ctx.wrap_socket(self.s, server_hostname="127.0.0.1")
        self.buf = b""


class Setup:
    """A Redis (TLS with certificate CERT, or plaintext), the example
    upstream, and daemons with [redis] REDIS_KEYS."""

    def __init__(self, cert="server", tls_redis=True, auth_clients="no", latency=0):
        self.tmp = tempfile.mkdtemp(prefix="cachasided-tlsrun-", dir=TMP)
        self.rport, self.uport = free_port(), free_port()
        self.tls_redis = tls_redis
        self.auth_clients = auth_clients
        self.procs = [self.start_redis(cert)]
        up = subprocess.Popen([UPSTREAM, "-p", str(self.uport), "-g", "100", "-l", str(latency), "-q"],
                              stderr=subprocess.DEVNULL)
        self.procs.append(up)
        wait_port(self.uport, up, "example upstream")
        self.daemons = []

    def daemon(self, redis_keys, cache=None):
        """Starts a daemon; returns (port, admin port, log path)."""
        n = len(self.daemons)
        port, aport = free_port(), free_port()
        base = {"connect_timeout_ms": 1000}
        if redis_keys.get("mode", "standalone") == "standalone":
            base["host"] = "127.0.0.1"
        conf = daemon_ini(os.path.join(self.tmp, "d%d.ini" % n), port, self.rport, self.uport,
                          server={"admin_listen": "127.0.0.1:%d" % aport, "log_level": "info"},
                          redis=dict(base, **redis_keys),
                          cache=dict({"ttl_s": 60}, **(cache or {})))
        log = os.path.join(self.tmp, "d%d.log" % n)
        with open(log, "w") as lf:
            d = subprocess.Popen([DAEMON, "-c", conf], stderr=lf)
        self.procs.append(d)
        wait_port(port, d, "cachasided")
        wait_port(aport, d, "admin endpoint")
        self.daemons.append((port, aport, log))
        return port, aport, log

    def start_redis(self, cert, loglevel="notice"):
        args = [REDIS, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--loglevel", loglevel,
                "--logfile", os.path.join(self.tmp, "redis.log")]
        if self.tls_redis:
            args += ["--port", "0", "--tls-port", str(self.rport), "--tls-cert-file", f(cert + ".crt"),
                     "--tls-key-file", f(cert + ".key"), "--tls-ca-cert-file", f("ca.crt"),
                     "--tls-auth-clients", self.auth_clients]
        else:
            args += ["--port", str(self.rport)]
        p = subprocess.Popen(args)
        wait_port(self.rport, p, "redis-server")
        return p

    def restart_redis(self, cert, loglevel="notice"):
        """The same port, another certificate: the daemons' links drop and reconnect."""
        self.procs[0].kill()
        self.procs[0].wait()
        self.procs[0] = self.start_redis(cert, loglevel)

    def redis(self):
        return TlsConn(self.rport) if self.tls_redis else Conn(self.rport)

    def close(self):
        for p in self.procs:
            if p.poll() is None:
                p.kill()
                p.wait()


def tls_keys(**kw):
    return dict({"tls": "yes", "tls_ca_file": f("ca.crt")}, **kw)


def wait_ready(aport, timeout=10.0):
    end = time.time() + timeout
    while time.time() < end:
        if http(aport, "GET", "/readyz")[::2] == (200, b"ok\n"):
            return
        time.sleep(0.05)
    raise AssertionError("not ready: %r" % (http(aport, "GET", "/readyz")[2],))


def tls_errors(aport, peer="redis"):
    """/metrics' cachasided_tls_errors_total of PEER, by reason."""
    st, _, body = http(aport, "GET", "/metrics")
    assert st == 200, st
    return {m.group(1): float(m.group(2)) for m in
            re.finditer(r'^cachasided_tls_errors_total\{peer="%s",reason="([a-z_]+)"\} (\S+)$' % peer,
                        body.decode(), re.M)}


def metric(aport, name):
    st, _, body = http(aport, "GET", "/metrics")
    m = re.search(r"^%s (\S+)$" % re.escape(name), body.decode(), re.M)
    assert m, name
    return float(m.group(1))


def wait_log(log, text, timeout=10.0):
    end = time.time() + timeout
    while time.time() < end:
        with open(log) as lf:
            if text in lf.read():
                return
        time.sleep(0.05)
    with open(log) as lf:
        raise AssertionError("no %r in the log:\n%s" % (text, lf.read()[-3000:]))


def stats(aport):
    st, _, body = http(aport, "GET", "/stats")
    assert st == 200, st
    return json.loads(body)


class TestTlsReads(unittest.TestCase):
    def setUp(self):
        self.s = Setup(latency=300)

    def tearDown(self):
        self.s.close()

    def test_miss_fill_hit_and_del_over_tls(self):
        port, aport, _ = self.s.daemon(tls_keys())
        wait_ready(aport)
        c = Conn(port)
        first = c.cmd("HGETALL", "product:p-001")
        self.assertIsInstance(first, list)
        self.assertIn(b"p-001", first)
        self.assertEqual(c.cmd("HGETALL", "product:p-001"), first)
        st = stats(aport)
        self.assertEqual((st["misses"], st["hits"], st["upstream_requests"]), (1, 1, 1))
        self.assertEqual(st["redis_state"], "up")
        self.assertEqual(st["redis_subscriber_state"], "up")
        r = self.s.redis()
        stored = [k for k in r.cmd("KEYS", "cache:*") if b"p-001" in k]
        self.assertTrue(stored, "the record is in Redis, written over TLS")
        self.assertEqual(c.cmd("DEL", "product:p-001"), 1)
        self.assertEqual([k for k in r.cmd("KEYS", "cache:*") if b"p-001" in k and b"lock" not in k], [])
        r.close()
        c.close()

    def test_fill_notice_reaches_the_other_daemon_over_tls(self):
        # lock_poll_ms long: only the notice on the TLS subscriber link can
        # wake the second daemon's waiting read in time.
        cache = {"lock_poll_ms": 8000, "lock_ttl_ms": 10000}
        p1, a1, _ = self.s.daemon(tls_keys(), cache)
        p2, a2, _ = self.s.daemon(tls_keys(), cache)
        wait_ready(a1)
        wait_ready(a2)
        c1, c2 = Conn(p1), Conn(p2)
        c1.send("HGETALL", "product:p-002")
        time.sleep(0.1)                 # the first daemon holds the fill lock (upstream takes 300 ms)
        t0 = time.time()
        v2 = c2.cmd("HGETALL", "product:p-002")
        waited = time.time() - t0
        self.assertEqual(c1.reply(), v2)
        self.assertLess(waited, 4.0)
        self.assertEqual(stats(a2)["fills_woken_by_notice"], 1)
        self.assertEqual(stats(a2)["upstream_requests"], 0)


class TestTlsRefused(unittest.TestCase):
    """Each a clear reason, in /readyz and the log, and nothing cached."""

    def check_refused(self, s, keys, reason, counted=None):
        port, aport, log = s.daemon(keys)
        end = time.time() + 10
        body = b""
        while time.time() < end:
            body = http(aport, "GET", "/readyz")[2].decode()
            if re.search(reason, body):
                break
            time.sleep(0.05)
        self.assertRegex(body, "^ok, degraded: redis: .*" + reason)
        c = Conn(port)
        v = c.cmd("HGETALL", "product:p-003")
        self.assertIn(b"p-003", v)     # from the upstream, Redis down
        c.close()
        with open(log) as lf:
            self.assertRegex(lf.read(), reason)
        r = s.redis()
        self.assertEqual(r.cmd("DBSIZE"), 0)
        r.close()
        if counted:
            self.check_counted(aport, log, reason, counted)

    def check_counted(self, aport, log, reason, counted):
        """On /metrics by reason; in the log once per link (data and
        subscriber) however often the reconnects fail within 10 s."""
        end = time.time() + 15
        while tls_errors(aport).get(counted, 0) < 5 and time.time() < end:
            time.sleep(0.1)
        errs = tls_errors(aport)
        self.assertGreaterEqual(errs.get(counted, 0), 5, errs)
        self.assertEqual({k for k, v in errs.items() if v}, {counted})
        self.assertEqual(set(tls_errors(aport, "upstream").values()), {0})
        with open(log) as lf:
            lines = [line for line in lf.read().splitlines() if re.search(reason, line)]
        self.assertTrue(1 <= len(lines) <= 2, lines)

    def run_case(self, reason, keys, counted=None, **setup):
        s = Setup(**setup)
        try:
            self.check_refused(s, keys, reason, counted)
        finally:
            s.close()

    def test_unknown_ca(self):
        # Redis sends its CA with its certificate: a root the daemon does not trust.
        self.run_case("TLS handshake failed: certificate verify failed: "
                      "(unable to get local issuer certificate|self-signed certificate in certificate chain)",
                      tls_keys(tls_ca_file=f("otherca.crt")), counted="unknown_ca")

    def test_wrong_address(self):
        self.run_case("TLS handshake failed: certificate verify failed: IP address mismatch", tls_keys(), cert="wrongname",
                      counted="name_mismatch")

    def test_wrong_server_name(self):
        self.run_case("TLS handshake failed: certificate verify failed: hostname mismatch",
                      tls_keys(tls_server_name="other.test"), counted="name_mismatch")

    def test_expired(self):
        self.run_case("TLS handshake failed: certificate verify failed: certificate has expired", tls_keys(), cert="expired",
                      counted="expired")

    def test_plaintext_redis_with_tls(self):
        # A plaintext Redis waits for the end of a line that a ClientHello
        # never sends: the handshake's deadline says it.
        self.run_case(r"TLS handshake timed out \(connect_timeout_ms\): is the port plaintext\?", tls_keys(),
                      tls_redis=False, counted="handshake_timeout")

    def test_http_server_on_the_tls_port(self):
        # The example upstream answers a ClientHello with an HTTP error: no TLS record.
        s = Setup()
        try:
            self.check_refused(s, tls_keys(port=s.uport),
                               "TLS handshake failed: (wrong version number|packet length too long|record layer)",
                               "protocol")
        finally:
            s.close()

    def test_tls_redis_without_tls(self):
        self.run_case(r"connection lost: .* before any reply \(a TLS port\? tls = yes\)", {})

    def test_client_certificate_missing(self):
        # The alert, or the reset when Redis's close beats it.
        self.run_case(r"connection lost: TLS: (tlsv13 alert certificate required|the server closed the connection "
                      r"before any reply) \(tls-auth-clients: set tls_cert_file and tls_key_file\)", tls_keys(),
                      auth_clients="yes")


class TestTlsReload(unittest.TestCase):
    """SIGHUP reads the TLS files again: the paths stay, their contents
    may be renewed; a file that does not load refuses the reload."""

    def setUp(self):
        self.s = Setup()
        self.trust = os.path.join(self.s.tmp, "trust.crt")
        shutil.copy(f("ca.crt"), self.trust)
        self.port, self.aport, self.log = self.s.daemon(tls_keys(tls_ca_file=self.trust))
        self.pid = self.s.procs[-1]
        wait_ready(self.aport)

    def tearDown(self):
        self.s.close()

    def read(self, rid):
        c = Conn(self.port)
        try:
            v = c.cmd("HGETALL", "product:" + rid)
        finally:
            c.close()
        self.assertIn(rid.encode(), v)

    def cached(self, rid):
        r = self.s.redis()
        try:
            return any(rid.encode() in k for k in r.cmd("KEYS", "cache:*"))
        finally:
            r.close()

    def test_rotated_ca_used_after_reload(self):
        self.read("p-010")
        # Redis's certificate renewed under a new CA; the daemon's CA file replaced.
        shutil.copy(f("newca.crt"), self.trust)
        self.s.restart_redis("newserver")
        end = time.time() + 10
        while time.time() < end and "certificate verify failed" not in http(self.aport, "GET", "/readyz")[2].decode():
            time.sleep(0.05)
        self.assertIn("certificate verify failed", http(self.aport, "GET", "/readyz")[2].decode(),
                      "the file's old contents were still in use before the reload")
        self.pid.send_signal(signal.SIGHUP)
        wait_log(self.log, "reload: configuration applied")
        wait_ready(self.aport)
        self.read("p-011")
        self.assertTrue(self.cached("p-011"))
        self.assertEqual(metric(self.aport, "cachasided_config_last_reload_successful"), 1)

    def test_bad_file_refuses_the_reload(self):
        with open(self.trust, "w") as fp:
            fp.write("not a certificate\n")
        self.pid.send_signal(signal.SIGHUP)
        wait_log(self.log, "reload: [redis] tls_ca_file '%s': " % self.trust)
        with open(self.log) as lf:
            self.assertRegex(lf.read(), r"tls_ca_file '%s': no certificate or crl found" % re.escape(self.trust))
        self.assertEqual(metric(self.aport, "cachasided_config_last_reload_successful"), 0)
        self.read("p-012")                       # the link that was up serves on
        self.assertTrue(self.cached("p-012"))
        # A new connection uses the files read before.
        self.s.restart_redis("server")
        time.sleep(0.3)
        wait_ready(self.aport)
        self.read("p-013")
        self.assertTrue(self.cached("p-013"))


class TestTlsClose(unittest.TestCase):
    def test_close_notify_at_shutdown(self):
        # Redis (verbose) logs each client's end; a close without
        # close_notify is OpenSSL's "unexpected eof while reading".
        s = Setup()
        try:
            s.restart_redis("server", loglevel="verbose")
            port, aport, log = s.daemon(tls_keys())
            wait_ready(aport)
            d = s.procs[-1]
            d.send_signal(signal.SIGTERM)
            self.assertEqual(d.wait(20), 0)
            time.sleep(0.3)
            with open(os.path.join(s.tmp, "redis.log")) as lf:
                text = lf.read()
            ends = [line for line in text.splitlines() if "Reading from client" in line or "closed connection" in line]
            self.assertEqual(len(ends), 2, text[-3000:])       # the data link and the subscriber
            for line in ends:
                self.assertNotIn("unexpected eof", line)
        finally:
            s.close()


def tls_server(tmp, port, *extra, conf=None):
    """A TLS-only redis-server on PORT, with options EXTRA (a sentinel: its CONF file)."""
    p = subprocess.Popen([REDIS] + ([conf] if conf else []) + [
        "--bind", "127.0.0.1", "--port", "0", "--tls-port", str(port), "--save", "", "--appendonly", "no",
        "--tls-cert-file", f("server.crt"), "--tls-key-file", f("server.key"), "--tls-ca-cert-file", f("ca.crt"),
        "--tls-auth-clients", "no", "--dir", tmp, "--logfile", os.path.join(tmp, "redis-%d.log" % port)]
        + list(extra))
    wait_port(port, p, "redis-server")
    return p


class TopoSetup(Setup):
    """Sentinel and Cluster over TLS: the addresses they hand out are TLS
    ports (tls-replication, tls-cluster), and every link speaks TLS."""

    def __init__(self):
        self.tmp = tempfile.mkdtemp(prefix="cachasided-tlstopo-", dir=TMP)
        self.uport = free_port()
        self.procs = []
        up = subprocess.Popen([UPSTREAM, "-p", str(self.uport), "-g", "100", "-q"], stderr=subprocess.DEVNULL)
        self.procs.append(up)
        wait_port(self.uport, up, "example upstream")
        self.daemons = []
        self.tls_redis = True


class TestTlsModes(unittest.TestCase):
    def read_through(self, s, keys, servers):
        port, aport, _ = s.daemon(keys)
        wait_ready(aport, 15)
        c = Conn(port)
        # Ready may come before every cluster node's link is up (a read of
        # a slot whose link is not is answered by the upstream, uncached):
        # read again until every server holds records.
        end = time.time() + 10
        while True:
            for i in range(1, 9):
                self.assertIn(b"p-%03d" % i, c.cmd("HGETALL", "product:p-%03d" % i))
            sizes = []
            for sp in servers:
                r = TlsConn(sp)
                sizes.append(r.cmd("DBSIZE"))
                r.close()
            if (0 not in sizes and sum(sizes) >= 8) or time.time() > end:
                break
            time.sleep(0.2)
        c.close()
        self.assertGreaterEqual(sum(sizes), 8)
        self.assertNotIn(0, sizes, "every server was written")
        return aport

    def test_sentinel_over_tls(self):
        s = TopoSetup()
        try:
            s.rport = free_port()
            s.procs.append(tls_server(s.tmp, s.rport, "--tls-replication", "yes"))
            sport = free_port()
            sconf = os.path.join(s.tmp, "sentinel.conf")
            with open(sconf, "w") as fp:
                fp.write("sentinel monitor cache 127.0.0.1 %d 1\n" % s.rport)
            s.procs.append(tls_server(s.tmp, sport, "--sentinel", "--tls-replication", "yes", conf=sconf))
            aport = self.read_through(s, tls_keys(mode="sentinel", sentinels="127.0.0.1:%d" % sport,
                                                  master_name="cache"), [s.rport])
            self.assertEqual(stats(aport)["redis_state"], "up")
        finally:
            s.close()

    def test_cluster_over_tls(self):
        s = TopoSetup()
        try:
            ports, buses = [free_port(), free_port()], [free_port(), free_port()]
            s.rport = ports[0]
            for p, bus in zip(ports, buses):
                s.procs.append(tls_server(s.tmp, p, "--cluster-enabled", "yes", "--tls-cluster", "yes",
                                          "--cluster-port", str(bus),
                                          "--cluster-config-file", os.path.join(s.tmp, "nodes-%d.conf" % p)))
            a, b = TlsConn(ports[0]), TlsConn(ports[1])
            self.assertEqual(a.cmd("CLUSTER", "ADDSLOTSRANGE", "0", "8191"), "+OK")
            self.assertEqual(b.cmd("CLUSTER", "ADDSLOTSRANGE", "8192", "16383"), "+OK")
            self.assertEqual(a.cmd("CLUSTER", "MEET", "127.0.0.1", str(ports[1]), str(buses[1])), "+OK")
            end = time.time() + 15
            while time.time() < end and not all(b"cluster_state:ok" in x.cmd("CLUSTER", "INFO") for x in (a, b)):
                time.sleep(0.1)
            self.assertIn(b"cluster_state:ok", a.cmd("CLUSTER", "INFO"))
            a.close()
            b.close()
            # Seeded with the first node only: the second is reached at the
            # TLS port the cluster announces.
            self.read_through(s, tls_keys(mode="cluster", nodes="127.0.0.1:%d" % ports[0]), ports)
        finally:
            s.close()


class TestTlsAccepted(unittest.TestCase):
    def test_client_certificate_and_server_name(self):
        # mTLS with the client certificate; the name-only certificate
        # accepted through tls_server_name.
        for cert, keys, auth in (("server", tls_keys(tls_cert_file=f("client.crt"), tls_key_file=f("client.key")),
                                  "yes"),
                                 ("wrongname", tls_keys(tls_server_name="elsewhere.test"), "no")):
            s = Setup(cert=cert, auth_clients=auth)
            try:
                port, aport, _ = s.daemon(keys)
                wait_ready(aport)
                c = Conn(port)
                self.assertIn(b"p-004", c.cmd("HGETALL", "product:p-004"))
                c.close()
                r = s.redis()
                self.assertGreater(r.cmd("DBSIZE"), 0)
                r.close()
            finally:
                s.close()

    def test_bad_tls_files_refused_by_check(self):
        conf = f("bad.ini")
        with open(conf, "w") as fp:
            fp.write("[redis]\ntls = yes\ntls_ca_file = %s\n[namespace:p]\nupstream = http://127.0.0.1:1/{id}\n"
                     % f("missing.crt"))
        r = subprocess.run([DAEMON, "-t", "-c", conf], capture_output=True, text=True)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("%s:3: [redis] tls_ca_file '%s': No such file or directory" % (conf, f("missing.crt")),
                      r.stderr)
        with open(conf, "w") as fp:
            fp.write("[redis]\ntls = yes\ntls_cert_file = %s\n[namespace:p]\nupstream = http://127.0.0.1:1/{id}\n"
                     % f("client.crt"))
        r = subprocess.run([DAEMON, "-t", "-c", conf], capture_output=True, text=True)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("tls_cert_file and tls_key_file go together", r.stderr)
        # A file that is there but is no certificate: the start fails, saying so.
        with open(conf, "w") as fp:
            fp.write("[redis]\ntls = yes\ntls_ca_file = %s\n[namespace:p]\nupstream = http://127.0.0.1:1/{id}\n"
                     % f("server.ext"))
        r = subprocess.run([DAEMON, "-c", conf], capture_output=True, text=True, timeout=10)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("tls_ca_file '%s'" % f("server.ext"), r.stderr)


if __name__ == "__main__":
    unittest.main(verbosity=2)
