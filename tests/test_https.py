#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-3-Clause
"""Integration tests of https:// upstreams and upstream_header lines
(docs/configuration.md), run by `make check`.

A real nginx (Debian's nginx-light) serves JSON records over TLS with
certificates this test makes with the `openssl` command: a test CA, a valid
certificate for localhost and 127.0.0.1, an expired one, one for another
name, a client certificate for mutual TLS. A real redis-server and the
daemon run beside it on free loopback ports. Checks what a client and an
operator see: a record read over HTTPS and cached, keep-alive connections
reused (and replaced once nginx closes them), the configured header reaching
the upstream (a wrong token is `-UPSTREAM status 401`, not a record), each
TLS failure an upstream error with OpenSSL's reason in the log (once per
host and reason within 10 s) and nothing cached, counted on /metrics by
reason, close_notify on an idle connection at shutdown (a Python TLS server
tells it from a bare close), a header file read again on reload, and the configuration errors
of bad header lines and exposed files, each at its FILE:LINE.
"""
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import unittest

sys.dont_write_bytecode = True     # keep the source tree clean
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cstest import Conn, free_port, wait_port  # noqa: E402

DAEMON = os.environ.get("CACHASIDED_BIN", "src/cachasided")
REDIS = os.environ.get("REDIS_SERVER") or shutil.which("redis-server") or "redis-server"
NGINX = shutil.which("nginx") or ("/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None)
OPENSSL = shutil.which("openssl")


def need_tools():
    """Fails (never skips) when a tool is missing, naming its package."""
    if not NGINX:
        raise SystemExit("test_https: nginx not found: install the Debian package nginx-light "
                         "(apt-get install nginx-light)")
    if not OPENSSL:
        raise SystemExit("test_https: the openssl command not found: install the Debian package openssl")


def run(*args, cwd=None):
    subprocess.run(args, cwd=cwd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


class Certs:
    """A test CA and what it signs, in DIR: ca.pem, server.pem (localhost,
    127.0.0.1), expired.pem, wrongname.pem (wrong.example), client.pem, and
    other-ca.pem, a CA that signed none of them."""

    def __init__(self, d):
        self.d = d
        for ca in ("ca", "other-ca"):
            run(OPENSSL, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", self.p(ca + ".key"),
                "-out", self.p(ca + ".pem"), "-days", "30", "-subj", "/CN=cachasided test " + ca)
        self.sign("server", "subjectAltName=DNS:localhost,IP:127.0.0.1")
        self.sign("wrongname", "subjectAltName=DNS:wrong.example")
        self.sign("client", "extendedKeyUsage=clientAuth")
        self.expired()
        for f in os.listdir(d):
            if f.endswith(".key"):
                os.chmod(self.p(f), 0o600)

    def p(self, name):
        return os.path.join(self.d, name)

    def csr(self, name):
        run(OPENSSL, "req", "-new", "-newkey", "rsa:2048", "-nodes", "-keyout", self.p(name + ".key"),
            "-out", self.p(name + ".csr"), "-subj", "/CN=" + name)

    def sign(self, name, ext):
        self.csr(name)
        with open(self.p(name + ".ext"), "w") as f:
            f.write(ext + "\n")
        run(OPENSSL, "x509", "-req", "-in", self.p(name + ".csr"), "-CA", self.p("ca.pem"), "-CAkey",
            self.p("ca.key"), "-CAcreateserial", "-days", "30", "-extfile", self.p(name + ".ext"),
            "-out", self.p(name + ".pem"))

    def expired(self):
        """Valid for a day in 2020: `openssl ca` takes explicit dates."""
        self.csr("expired")
        cadir = self.p("cadb")
        os.mkdir(cadir)
        open(os.path.join(cadir, "index.txt"), "w").close()
        with open(os.path.join(cadir, "serial"), "w") as f:
            f.write("1000\n")
        with open(self.p("ca.cnf"), "w") as f:
            f.write("[ca]\ndefault_ca = c\n[c]\ndatabase = %s/index.txt\nnew_certs_dir = %s\nserial = %s/serial\n"
                    "default_md = sha256\npolicy = p\nunique_subject = no\nx509_extensions = e\n"
                    "[p]\ncommonName = supplied\n[e]\nsubjectAltName = DNS:localhost,IP:127.0.0.1\n"
                    % (cadir, cadir, cadir))
        run(OPENSSL, "ca", "-batch", "-notext", "-config", self.p("ca.cnf"), "-cert", self.p("ca.pem"),
            "-keyfile", self.p("ca.key"), "-in", self.p("expired.csr"), "-out", self.p("expired.pem"),
            "-startdate", "20200101000000Z", "-enddate", "20200102000000Z")


NGINX_CONF = """
daemon off;
%(user)s
pid %(d)s/nginx.pid;
error_log %(d)s/nginx-error.log;
events { worker_connections 64; }
http {
    log_format conn '$request $status $connection $connection_requests';
    log_format hdrs '$uri tenant=$http_x_tenant agent=$http_user_agent';
    access_log %(d)s/access.log conn;
    access_log %(d)s/headers.log hdrs;
    client_body_temp_path %(d)s/body;
    keepalive_timeout %(keepalive)s;
    default_type application/json;
    root %(d)s/www;
    server {
        listen 127.0.0.1:%(ok)d ssl;
        ssl_certificate %(c)s/server.pem;
        ssl_certificate_key %(c)s/server.key;
        location /secure/ {
            if ($http_authorization != "Bearer x") { return 401; }
        }
    }
    server {
        listen 127.0.0.1:%(expired)d ssl;
        ssl_certificate %(c)s/expired.pem;
        ssl_certificate_key %(c)s/expired.key;
    }
    server {
        listen 127.0.0.1:%(wrongname)d ssl;
        ssl_certificate %(c)s/wrongname.pem;
        ssl_certificate_key %(c)s/wrongname.key;
    }
    server {
        listen 127.0.0.1:%(mtls)d ssl;
        ssl_certificate %(c)s/server.pem;
        ssl_certificate_key %(c)s/server.key;
        ssl_verify_client on;
        ssl_client_certificate %(c)s/ca.pem;
    }
    server {
        listen 127.0.0.1:%(plain)d;
    }
}
"""


class Stack:
    """Certificates, nginx, redis-server and one daemon with a namespace per
    case (NAMESPACES: {name: {key: value}}, upstream templates with
    %(ok)d-style ports)."""

    def __init__(self, namespaces, keepalive="60s"):
        self.tmp = tempfile.mkdtemp(prefix="cachasided-https-")
        self.procs = []
        os.mkdir(os.path.join(self.tmp, "certs"))
        self.certs = Certs(os.path.join(self.tmp, "certs"))
        self.ports = {k: free_port() for k in ("ok", "expired", "wrongname", "mtls", "plain")}
        # A listener that accepts (the kernel does) and never says a word.
        self.silent = socket.socket()
        self.silent.bind(("127.0.0.1", 0))
        self.silent.listen(16)
        self.ports["silent"] = self.silent.getsockname()[1]
        for d in ("products", "secure"):
            os.makedirs(os.path.join(self.tmp, "www", d))
        for i in range(1, 6):
            for d in ("products", "secure"):
                with open(os.path.join(self.tmp, "www", d, "p-%d" % i), "w") as f:
                    f.write('{"name": "widget %d", "where": "%s"}' % (i, d))
        conf = os.path.join(self.tmp, "nginx.conf")
        with open(conf, "w") as f:
            f.write(NGINX_CONF % dict(self.ports, d=self.tmp, c=self.certs.d, keepalive=keepalive,
                                      user="user root;" if os.getuid() == 0 else ""))
        self.files = [open(os.path.join(self.tmp, "nginx.out"), "w"), open(os.path.join(self.tmp, "daemon.log"), "w")]
        self.nginx = subprocess.Popen([NGINX, "-c", conf, "-p", self.tmp], stderr=self.files[0])
        self.procs.append(self.nginx)
        for port in self.ports.values():
            wait_port(port, self.nginx, "nginx")
        self.rport, self.port, self.aport = free_port(), free_port(), free_port()
        self.redis = subprocess.Popen([REDIS, "--port", str(self.rport), "--bind", "127.0.0.1", "--save", "",
                                       "--appendonly", "no", "--logfile", os.path.join(self.tmp, "redis.log")])
        self.procs.append(self.redis)
        wait_port(self.rport, self.redis, "redis-server")
        self.token = os.path.join(self.tmp, "token")
        self.write_token("Bearer x")
        lines = ["[server]", "listen = 127.0.0.1:%d" % self.port, "admin_listen = 127.0.0.1:%d" % self.aport,
                 "[redis]", "port = %d" % self.rport,
                 "[cache]", "ttl_s = 60", "lock_ttl_ms = 3000", "upstream_timeout_ms = 2000",
                 "upstream_ca_file = %s" % self.certs.p("ca.pem")]
        for name, keys in namespaces.items():
            lines.append("[namespace:%s]" % name)
            for k, v in keys:
                lines.append("%s = %s" % (k, v % dict(self.ports, token=self.token, c=self.certs.d)))
        self.conf = os.path.join(self.tmp, "cachasided.ini")
        with open(self.conf, "w") as f:
            f.write("\n".join(lines) + "\n")
        self.log = os.path.join(self.tmp, "daemon.log")
        self.daemon = subprocess.Popen([DAEMON, "-c", self.conf], stderr=self.files[1])
        self.procs.append(self.daemon)
        wait_port(self.port, self.daemon, "cachasided")

    def write_token(self, value):
        with open(self.token, "w") as f:
            f.write(value + "\n")
        os.chmod(self.token, 0o600)

    def redis_cmd(self, *args):
        c = Conn(self.rport)
        try:
            return c.cmd(*args)
        finally:
            c.close()

    def daemon_log(self):
        with open(self.log) as f:
            return f.read()

    def access_log(self):
        with open(os.path.join(self.tmp, "access.log")) as f:
            return f.read().splitlines()

    def metrics(self):
        s = socket.create_connection(("127.0.0.1", self.aport), 5)
        s.sendall(b"GET /metrics HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        data = b""
        while True:
            d = s.recv(65536)
            if not d:
                break
            data += d
        s.close()
        return data.decode()

    def stop_daemon(self):
        """SIGTERM: the daemon's exit status (0 when it stopped cleanly;
        LeakSanitizer makes a leak fail it in the sanitizer build)."""
        if self.daemon.poll() is None:
            self.daemon.send_signal(signal.SIGTERM)
        return self.daemon.wait(30)

    def close(self):
        for p in reversed(self.procs):
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
        for f in self.files:
            f.close()
        self.silent.close()
        shutil.rmtree(self.tmp, ignore_errors=True)


CASES = {
    # name: the namespace's keys
    "ok": [("upstream", "https://127.0.0.1:%(ok)d/products/{id}")],
    "byname": [("upstream", "https://localhost:%(ok)d/secure/{id}"),
               ("upstream_header", "Authorization: @%(token)s"),
               ("upstream_header", "X-Tenant: shop-1")],
    "badtoken": [("upstream", "https://localhost:%(ok)d/secure/{id}"),
                 ("upstream_header", "Authorization: Bearer wrong")],
    "notoken": [("upstream", "https://localhost:%(ok)d/secure/{id}")],
    "wrongca": [("upstream", "https://127.0.0.1:%(ok)d/products/{id}"),
                ("upstream_ca_file", "%(c)s/other-ca.pem")],
    "expired": [("upstream", "https://127.0.0.1:%(expired)d/products/{id}")],
    "wrongname": [("upstream", "https://localhost:%(wrongname)d/products/{id}")],
    "plain": [("upstream", "https://127.0.0.1:%(plain)d/products/{id}")],
    "mtls": [("upstream", "https://127.0.0.1:%(mtls)d/products/{id}"),
             ("upstream_cert_file", "%(c)s/client.pem"), ("upstream_key_file", "%(c)s/client.key")],
    "nocert": [("upstream", "https://127.0.0.1:%(mtls)d/products/{id}")],
    "silent": [("upstream", "https://127.0.0.1:%(silent)d/products/{id}"), ("upstream_timeout_ms", "600")],
}


def as_dict(reply):
    return {reply[i].decode(): reply[i + 1].decode() for i in range(0, len(reply), 2)}


class HttpsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        need_tools()
        cls.s = Stack(CASES, keepalive="1s")

    @classmethod
    def tearDownClass(cls):
        try:
            rc = cls.s.stop_daemon()
            assert rc == 0, "the daemon exited with %s:\n%s" % (rc, cls.s.daemon_log()[-3000:])
        finally:
            cls.s.close()

    def setUp(self):
        self.c = Conn(self.s.port)

    def tearDown(self):
        self.c.close()

    def cached(self, ns, rid):
        return self.s.redis_cmd("EXISTS", "cache:%s:{%s}" % (ns, rid)) == 1

    def assert_log(self, pattern, timeout=5.0):
        end = time.time() + timeout
        while time.time() < end:
            if re.search(pattern, self.s.daemon_log()):
                return
            time.sleep(0.05)
        self.fail("the daemon's log has no %r:\n%s" % (pattern, self.s.daemon_log()))

    def test_record_read_over_https_and_cached(self):
        self.assertFalse(self.cached("ok", "p-1"))
        self.assertEqual(as_dict(self.c.cmd("HGETALL", "ok:p-1")), {"name": "widget 1", "where": "products"})
        self.assertTrue(self.cached("ok", "p-1"))
        n = len(self.s.access_log())
        self.assertEqual(as_dict(self.c.cmd("HGETALL", "ok:p-1"))["name"], "widget 1")
        self.assertEqual(len(self.s.access_log()), n, "a hit asked the upstream again")

    def test_keepalive_reused_then_replaced(self):
        for i in (2, 3, 4):
            self.assertEqual(as_dict(self.c.cmd("HGETALL", "ok:p-%d" % i))["name"], "widget %d" % i)
        reqs = [line.split() for line in self.s.access_log() if re.match(r"GET /products/p-[234] ", line)]
        self.assertEqual(len(reqs), 3)
        self.assertEqual(len({r[-2] for r in reqs}), 1, "one TLS connection for reads in a row: %r" % reqs)
        self.assertEqual([r[-1] for r in reqs][-1], "3")
        # nginx closes it after keepalive_timeout 1s: the next fetch connects again.
        time.sleep(1.5)
        self.assertEqual(as_dict(self.c.cmd("HGETALL", "ok:p-5"))["name"], "widget 5")
        again = [line.split() for line in self.s.access_log() if line.startswith("GET /products/p-5 ")]
        self.assertEqual(len(again), 1)
        self.assertNotEqual(again[0][-2], reqs[0][-2], "the closed connection was not replaced")
        self.assertEqual(again[0][-1], "1")

    def test_header_reaches_the_upstream(self):
        # nginx answers /secure/ 401 unless Authorization is "Bearer x" (read from a file)
        self.assertEqual(as_dict(self.c.cmd("HGETALL", "byname:p-1")), {"name": "widget 1", "where": "secure"})
        self.assertTrue(self.cached("byname", "p-1"))
        with open(os.path.join(self.s.tmp, "headers.log")) as f:
            self.assertRegex(f.read(), r"/secure/p-1 tenant=shop-1 agent=cachasided/")

    def test_wrong_or_missing_token_is_an_upstream_error(self):
        for ns in ("badtoken", "notoken"):
            r = self.c.cmd("HGETALL", "%s:p-1" % ns)
            self.assertEqual(r, "-UPSTREAM status 401", ns)
            self.assertFalse(self.cached(ns, "p-1"), ns)

    def tls_errors(self, reason):
        m = re.search(r'^cachasided_tls_errors_total\{peer="upstream",reason="%s"\} (\S+)$' % reason,
                      self.s.metrics(), re.M)
        self.assertIsNotNone(m, "no cachasided_tls_errors_total for %s" % reason)
        return float(m.group(1))

    def tls_failure(self, ns, reason, counted):
        r = self.c.cmd("HGETALL", "%s:p-1" % ns)
        self.assertEqual(r, "-UPSTREAM unreachable", ns)
        self.assertFalse(self.cached(ns, "p-1"), ns)
        line = r"upstream https://[^ ]+: TLS failed: [^\n]*(%s)" % reason
        self.assert_log(line)
        self.assertRegex(self.s.metrics(), r'namespace="%s",result="connect"\} 1\b' % ns)
        # and again: not a negative record either
        self.assertEqual(self.c.cmd("HGETALL", "%s:p-1" % ns), "-UPSTREAM unreachable")
        # Both counted by reason; the second not logged (once per 10 s per host and reason).
        self.assertEqual(self.tls_errors(counted), 2)
        self.assertEqual(len(re.findall(line, self.s.daemon_log())), 1, self.s.daemon_log())

    def test_wrong_ca(self):
        self.tls_failure("wrongca", "unable to get local issuer certificate", "unknown_ca")

    def test_expired_certificate(self):
        self.tls_failure("expired", "certificate has expired", "expired")

    def test_wrong_name(self):
        self.tls_failure("wrongname", "hostname mismatch", "name_mismatch")

    def test_plaintext_server(self):
        self.tls_failure("plain", "wrong version number|packet length too long|record layer failure", "protocol")

    def test_handshake_within_the_deadline(self):
        t = time.monotonic()
        self.assertEqual(self.c.cmd("HGETALL", "silent:p-1"), "-UPSTREAM timeout")
        took = time.monotonic() - t
        self.assertGreaterEqual(took, 0.55)
        self.assertLess(took, 2.5, "upstream_timeout_ms = 600 did not bound the handshake")
        self.assertFalse(self.cached("silent", "p-1"))
        self.assertEqual(self.tls_errors("handshake_timeout"), 1)
        self.assert_log(r"upstream https://127.0.0.1:%d: TLS failed: the handshake did not finish within 600 ms"
                        % self.s.ports["silent"])

    def test_mutual_tls(self):
        self.assertEqual(as_dict(self.c.cmd("HGETALL", "mtls:p-2"))["name"], "widget 2")
        self.assertTrue(self.cached("mtls", "p-2"))
        # Without a client certificate nginx answers 400 over TLS 1.3.
        self.assertEqual(self.c.cmd("HGETALL", "nocert:p-2"), "-UPSTREAM status 400")
        self.assertFalse(self.cached("nocert", "p-2"))


class HeaderReloadTest(unittest.TestCase):
    """@file is read again on SIGHUP: a renewed token applies."""

    def test_token_file_read_on_reload(self):
        need_tools()
        s = Stack({"byname": CASES["byname"]})
        try:
            s.write_token("Bearer stale")
            c = Conn(s.port)
            self.assertEqual(as_dict(c.cmd("HGETALL", "byname:p-1"))["where"], "secure")   # read at start
            s.daemon.send_signal(signal.SIGHUP)
            end = time.time() + 5
            while "reload: configuration applied" not in s.daemon_log() and time.time() < end:
                time.sleep(0.05)
            self.assertEqual(c.cmd("HGETALL", "byname:p-2"), "-UPSTREAM status 401")
            s.write_token("Bearer x")
            os.chmod(s.token, 0o644)
            s.daemon.send_signal(signal.SIGHUP)
            end = time.time() + 5
            while "may be read or written by others" not in s.daemon_log() and time.time() < end:
                time.sleep(0.05)
            self.assertRegex(s.daemon_log(), r"%s:\d+: 'upstream_header' Authorization: %s may be read or "
                             r"written by others \(mode 0644\)" % (re.escape(s.conf), re.escape(s.token)))
            self.assertEqual(c.cmd("HGETALL", "byname:p-3"), "-UPSTREAM status 401")  # kept the running one
            os.chmod(s.token, 0o600)
            s.daemon.send_signal(signal.SIGHUP)
            end = time.time() + 5
            while s.daemon_log().count("reload: configuration applied") < 2 and time.time() < end:
                time.sleep(0.05)
            self.assertEqual(as_dict(c.cmd("HGETALL", "byname:p-4"))["name"], "widget 4")
            c.close()
            self.assertEqual(s.stop_daemon(), 0, s.daemon_log()[-3000:])
        finally:
            s.close()


class CloseNotifyTest(unittest.TestCase):
    """An idle keep-alive connection closed in order says so with
    close_notify, whichever side closes: a Python TLS server that tells it
    from a bare close."""

    def serve_one(self, closing):
        """A daemon whose namespace py reads from a Python TLS server that
        answers one request, then CLOSING(tls socket, stack); how the
        connection ended, as the server saw it."""
        need_tools()
        lsock = socket.socket()
        lsock.bind(("127.0.0.1", 0))
        lsock.listen(4)
        port = lsock.getsockname()[1]
        self.addCleanup(lsock.close)
        s = Stack({"py": [("upstream", "https://127.0.0.1:%d/products/{id}" % port)]})
        self.addCleanup(s.close)
        end = {}
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(s.certs.p("server.pem"), s.certs.p("server.key"))
        served = threading.Event()

        def serve():
            conn, _ = lsock.accept()
            conn.settimeout(20)
            t = ctx.wrap_socket(conn, server_side=True, suppress_ragged_eofs=False)
            req = b""
            while b"\r\n\r\n" not in req:
                req += t.recv(4096)
            body = b'{"name": "widget 1"}'
            t.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
                      % (len(body), body))
            served.set()
            try:
                end["how"] = closing(t)
            except ssl.SSLEOFError:
                end["how"] = "closed without close_notify"
            except OSError as e:
                end["how"] = repr(e)
            t.close()

        th = threading.Thread(target=serve, daemon=True)
        th.start()
        c = Conn(s.port)
        self.assertEqual(as_dict(c.cmd("HGETALL", "py:p-1")), {"name": "widget 1"})
        c.close()
        served.wait(5)
        return s, th, end

    def test_close_notify_at_shutdown(self):
        s, th, end = self.serve_one(lambda t: "close_notify" if t.recv(1) == b"" else "more bytes")
        self.assertEqual(s.stop_daemon(), 0, s.daemon_log()[-3000:])
        th.join(20)
        self.assertEqual(end.get("how"), "close_notify")

    def test_server_close_notify_answered(self):
        # unwrap() sends the server's close_notify and waits for the daemon's.
        def close(t):
            time.sleep(0.2)
            t.unwrap()
            return "answered"
        s, th, end = self.serve_one(close)
        th.join(20)
        self.assertEqual(end.get("how"), "answered")
        self.assertEqual(s.stop_daemon(), 0, s.daemon_log()[-3000:])


class ConfigErrorsTest(unittest.TestCase):
    """`cachasided -t`: each bad line named at FILE:LINE."""

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="cachasided-https-conf-")

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def file(self, name, text, mode):
        p = os.path.join(self.tmp, name)
        with open(p, "w") as f:
            f.write(text)
        os.chmod(p, mode)
        return p

    def check(self, *ns_lines):
        conf = os.path.join(self.tmp, "c.ini")
        with open(conf, "w") as f:
            f.write("[namespace:p]\nupstream = https://api.example/{id}\n" + "".join(l + "\n" for l in ns_lines))
        r = subprocess.run([DAEMON, "-t", "-c", conf], capture_output=True, text=True)
        return r.returncode, r.stdout + r.stderr, conf

    def test_valid_https_namespace(self):
        tok = self.file("tok", "Bearer abc\n", 0o600)
        rc, out, _ = self.check("upstream_header = Authorization: @" + tok, "upstream_header = X-A: 1")
        self.assertEqual(rc, 0, out)
        self.assertIn("configuration is valid", out)

    def test_bad_lines(self):
        world = self.file("world", "Bearer abc\n", 0o644)
        crlf = self.file("crlf", "Bearer abc\r\nX-Evil: 1\n", 0o600)
        key = self.file("key.pem", "x", 0o644)
        cases = [
            ("upstream_header = NoColon", "must be 'Name: value'"),
            ("upstream_header = Bad Name: x", "not an HTTP token"),
            ("upstream_header = Connection: close", "manages itself"),
            ("upstream_header = transfer-encoding: chunked", "manages itself"),
            ("upstream_header = Host: other", "manages itself"),
            ("upstream_header = Content-Length: 3", "manages itself"),
            ("upstream_header = Proxy-Authorization: x", "Proxy-"),
            ("upstream_header = Authorization: @" + world, "may be read or written by others (mode 0644)"),
            ("upstream_header = Authorization: @" + crlf, "CR or LF"),
            ("upstream_header = Authorization: @relative", "absolute path"),
            ("upstream_header = Authorization: @/nonexistent/tok", "cannot open /nonexistent/tok"),
            ("upstream_key_file = " + key, "may be read or written by others"),
            ("upstream_ca_file = /nonexistent/ca.pem", "cannot open /nonexistent/ca.pem"),
        ]
        for line, want in cases:
            rc, out, conf = self.check(line)
            self.assertEqual(rc, 1, line)
            self.assertIn("%s:3: " % conf, out, line)
            self.assertIn(want, out, line)

    def test_duplicate_header_and_lone_certificate(self):
        rc, out, conf = self.check("upstream_header = X-A: 1", "upstream_header = x-a: 2")
        self.assertEqual(rc, 1)
        self.assertIn("%s:4: 'upstream_header' x-a is set twice (first at line 3)" % conf, out)
        cert = self.file("c.pem", "x", 0o644)
        rc, out, conf = self.check("upstream_cert_file = " + cert)
        self.assertEqual(rc, 1)
        self.assertIn("%s:3: namespace 'p': upstream_cert_file and upstream_key_file go together" % conf, out)

    def test_unloadable_certificate(self):
        cert = self.file("c.pem", "not a certificate\n", 0o644)
        key = self.file("k.pem", "not a key\n", 0o600)
        rc, out, conf = self.check("upstream_cert_file = " + cert, "upstream_key_file = " + key)
        self.assertEqual(rc, 1, out)
        self.assertIn("cannot load the client certificate " + cert, out)


if __name__ == "__main__":
    unittest.main(verbosity=2)
