# SPDX-License-Identifier: BSD-3-Clause
"""What the Python test tools share: a small RESP client, free ports, waiting
for a listener, a test CA for Redis over TLS, and a daemon's ini file.  Used
by tests/test_admin.py, tests/hostile/ and tests/faults/ (and bench/soak.py
through hostile.py, bench/tls for its CA).

Each importer finds this file relative to its own (sys.path), never through
the current directory, so it works from a VPATH build and `make distcheck`.
Standard library only (and the openssl command for a test CA).
"""
import os
import shutil
import socket
import ssl
import subprocess
import sys
import time


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def wait_port(port, proc, what, timeout=10.0):
    """Until 127.0.0.1:PORT accepts; exits the test if PROC (WHAT) dies or never listens."""
    end = time.time() + timeout
    while time.time() < end:
        if proc.poll() is not None:
            raise SystemExit("%s exited at start (status %s)" % (what, proc.returncode))
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit("%s does not listen on %d" % (what, port))


# ---- a small RESP client ------------------------------------------------

def enc(*args):
    """One command as a RESP array of bulk strings (str or bytes arguments)."""
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        if isinstance(a, str):
            a = a.encode()
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(out)


class RespError(str):
    """An error reply: the line as sent, "-ERR ...", so a test may check its
    type or its first character."""


class Conn:
    """One connection to 127.0.0.1:PORT.  Replies: "+OK" (str), RespError
    "-ERR ..." (a str too), int, bytes, None (nil) or a list of these.  A
    closed connection or a reply that is not RESP raises ConnectionError (an
    OSError); `s` is the socket, for tests that write raw bytes."""

    def __init__(self, port, timeout=10.0):
        self.s = socket.create_connection(("127.0.0.1", port), timeout)
        self.s.settimeout(timeout)
        ctx = TLS_PORTS.get(port)
        if ctx is not None:
            self.s = ctx.wrap_socket(self.s, server_hostname="127.0.0.1")
        self.buf = b""

    def close(self):
        try:
            self.s.close()
        except OSError:
            pass

    def send(self, *args):
        self.s.sendall(enc(*args))

    def _fill(self):
        d = self.s.recv(1 << 20)
        if not d:
            raise ConnectionError("connection closed")
        self.buf += d

    def _line(self):
        while True:
            i = self.buf.find(b"\r\n")
            if i >= 0:
                line, self.buf = self.buf[:i], self.buf[i + 2:]
                return line
            self._fill()

    def reply(self):
        line = self._line()
        t, rest = line[:1], line[1:]
        if t == b"+":
            return line.decode(errors="replace")
        if t == b"-":
            return RespError(line.decode(errors="replace"))
        if t == b":":
            return int(rest)
        if t == b"$":
            n = int(rest)
            if n < 0:
                return None
            while len(self.buf) < n + 2:
                self._fill()
            v, self.buf = self.buf[:n], self.buf[n + 2:]
            return v
        if t == b"*":
            n = int(rest)
            return None if n < 0 else [self.reply() for _ in range(n)]
        raise ConnectionError("bad RESP line %r" % line[:60])

    def cmd(self, *args):
        self.send(*args)
        return self.reply()

    def closed_after(self, timeout=5.0):
        """True if the server closes the connection within timeout."""
        end = time.time() + timeout
        self.s.settimeout(0.2)
        while time.time() < end:
            try:
                if not self.s.recv(65536):
                    return True
            except socket.timeout:
                continue
            except OSError:
                return True
        return False


# ---- TLS to Redis, for the TLS runs of the fault and hostile suites -------

# Port -> ssl.SSLContext: a Conn to one of these ports speaks TLS.  A suite
# whose Redis listens on TLS ports only registers them (TestCA.register):
# every helper that opens a Conn then reaches Redis over TLS, while the
# daemons' own ports stay plaintext.
TLS_PORTS = {}


class TestCA:
    """A CA and a certificate for 127.0.0.1 made in DIR with the openssl
    command: redis_args() for redis-server and sentinels, conf_lines() for
    sentinel.conf, daemon_keys() for a daemon's [redis] section."""

    def __init__(self, dirpath):
        self.dir = dirpath
        self.ca, self.crt, self.key = (os.path.join(dirpath, n) for n in ("ca.crt", "redis.crt", "redis.key"))
        ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
        self._ssl("req", "-x509", "-new", *ec, "-keyout", "ca.key", "-out", "ca.crt", "-days", "30",
                  "-subj", "/CN=cachasided test CA")
        self._ssl("req", "-new", *ec, "-keyout", "redis.key", "-out", "redis.csr", "-subj", "/CN=redis")
        with open(os.path.join(dirpath, "redis.ext"), "w") as f:
            f.write("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
        self._ssl("x509", "-req", "-in", "redis.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
                  "-out", "redis.crt", "-days", "30", "-extfile", "redis.ext")
        self.ctx = ssl.create_default_context(cafile=self.ca)

    def _ssl(self, *args):
        r = subprocess.run(["openssl"] + list(args), cwd=self.dir, capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError("openssl %s: %s" % (args[0], r.stderr.strip()))

    def settings(self):
        return [("tls-cert-file", self.crt), ("tls-key-file", self.key), ("tls-ca-cert-file", self.ca),
                ("tls-auth-clients", "no"), ("tls-replication", "yes")]

    def redis_args(self, port, cluster=False):
        """redis-server's arguments for TLS on PORT and no plaintext port."""
        args = ["--port", "0", "--tls-port", str(port)]
        for k, v in self.settings() + ([("tls-cluster", "yes")] if cluster else []):
            args += ["--" + k, v]
        return args

    def conf_lines(self, port):
        return "port 0\ntls-port %d\n" % port + "".join("%s %s\n" % kv for kv in self.settings())

    def daemon_keys(self):
        return {"tls": "yes", "tls_ca_file": self.ca}

    def register(self, port):
        TLS_PORTS[port] = self.ctx


# ---- a daemon's configuration ---------------------------------------------

def http_raw(port, method, path, body=b""):
    """One HTTP/1.1 request on its own connection: the whole reply, bytes."""
    s = socket.create_connection(("127.0.0.1", port), 5)
    s.sendall(b"%s %s HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s"
              % (method.encode(), path.encode(), len(body), body))
    data = b""
    while True:
        d = s.recv(65536)
        if not d:
            break
        data += d
    s.close()
    return data


def upstream_req(port, method, path, body=b""):
    """One request to the example upstream's control API (/_status/ID,
    /_count, ...): the reply's body as text."""
    return http_raw(port, method, path, body).partition(b"\r\n\r\n")[2].decode()


def stop_all(procs, tmp, daemon):
    """Stops PROCS (last started first) and removes TMP: the names of those
    that did not exit cleanly. A daemon must exit 0 (a sanitizer build
    reports leaks in its status); the others may die of the SIGTERM. When
    one did not, the logs in TMP (other than Redis's) go to stderr."""
    bad = []
    for p in reversed(procs):
        p.terminate()
        if p.wait(10) not in (0, -15) or (p.args[0] == daemon and p.returncode != 0):
            bad.append("%s exited %s" % (p.args[0], p.returncode))
    if bad:
        for name in sorted(os.listdir(tmp)):
            if name.endswith(".log") and not name.startswith("redis"):
                with open(os.path.join(tmp, name)) as f:
                    sys.stderr.write("---- %s\n%s" % (name, f.read()[-4000:]))
    shutil.rmtree(tmp, ignore_errors=True)
    return bad


def stats(c):
    """A daemon's STATS over Conn C, as {name: text}."""
    out = {}
    for line in c.cmd("STATS").decode().splitlines():
        k, _, v = line.partition(":")
        out[k] = v
    return out


def daemon_ini(path, port, rport, uport, server=None, redis=None, cache=None, namespaces=None):
    """Writes PATH for a daemon on 127.0.0.1:PORT with Redis on RPORT and
    the example upstream on UPORT as [namespace:product] (hashes) and
    [namespace:page] (raw).  SERVER, REDIS and CACHE add {key: value} to
    their sections, NAMESPACES more namespaces, {name: {key: value}}.
    Returns PATH."""
    sections = [
        ("server", dict({"listen": "127.0.0.1:%d" % port}, **(server or {}))),
        ("redis", dict({"port": rport}, **(redis or {}))),
        ("cache", cache or {}),
        ("namespace:product", {"upstream": "http://127.0.0.1:%d/products/{id}" % uport}),
        ("namespace:page", {"upstream": "http://127.0.0.1:%d/pages/{id}" % uport, "format": "raw"}),
    ]
    sections += [("namespace:" + name, keys) for name, keys in (namespaces or {}).items()]
    with open(path, "w") as f:
        for name, keys in sections:
            f.write("[%s]\n" % name + "".join("%s = %s\n" % kv for kv in keys.items()))
    return path
