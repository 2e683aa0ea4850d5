# SPDX-License-Identifier: BSD-3-Clause
"""What the Python test tools share: a small RESP client, free ports, waiting
for a listener, and a daemon's ini file.  Used by tests/test_admin.py,
tests/hostile/ and tests/faults/ (and bench/soak.py through hostile.py).

Each importer finds this file relative to its own (sys.path), never through
the current directory, so it works from a VPATH build and `make distcheck`.
Standard library only.
"""
import socket
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


# ---- a daemon's configuration ---------------------------------------------

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
