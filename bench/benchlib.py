# SPDX-License-Identifier: BSD-3-Clause
"""Helpers the benchmark scripts share (bench/run, bench/sidecars): free
ports, RESP framing, a blocking Redis client, the example upstream's
control API. Standard library only."""
import socket
import sys
import time
import urllib.request


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def wait_port(port, proc, what, timeout=20.0):
    end = time.time() + timeout
    while time.time() < end:
        if proc.poll() is not None:
            sys.exit("bench: %s exited at start (code %s)" % (what, proc.returncode))
        try:
            socket.create_connection(("127.0.0.1", port), 0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    sys.exit("bench: %s does not listen on %d" % (what, port))


def rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def resp(*args):
    out = ["*%d\r\n" % len(args)]
    for a in args:
        a = str(a)
        out.append("$%d\r\n%s\r\n" % (len(a.encode()), a))
    return "".join(out).encode()


def resp_end(b, i):
    """Where the RESP value at b[i:] ends, or -1 while it is incomplete."""
    nl = b.find(b"\r\n", i)
    if nl < 0:
        return -1
    t = b[i:i + 1]
    if t in (b"+", b"-", b":"):
        return nl + 2
    n = int(b[i + 1:nl])
    if t == b"$":
        end = nl + 2 + max(n, -2) + 2 if n >= 0 else nl + 2
        return end if end <= len(b) else -1
    i = nl + 2
    for _ in range(max(n, 0)):
        i = resp_end(b, i)
        if i < 0:
            return -1
    return i


class Redis:
    """A blocking RESP client, enough for set-up and INFO."""

    def __init__(self, port):
        self.s = socket.create_connection(("127.0.0.1", port), 10)
        self.buf = b""

    def _line(self):
        while b"\r\n" not in self.buf:
            d = self.s.recv(65536)
            if not d:
                raise OSError("closed")
            self.buf += d
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def _read(self):
        line = self._line()
        t, rest = line[:1], line[1:]
        if t in (b"+", b"-", b":"):
            return rest.decode() if t != b":" else int(rest)
        n = int(rest)
        if t == b"$":
            if n < 0:
                return None
            while len(self.buf) < n + 2:
                self.buf += self.s.recv(65536)
            v, self.buf = self.buf[:n], self.buf[n + 2:]
            return v.decode(errors="replace")
        return [self._read() for _ in range(max(n, 0))]

    def cmd(self, *args):
        self.s.sendall(resp(*args))
        return self._read()

    def many(self, cmds):
        self.s.sendall(b"".join(resp(*c) for c in cmds))
        return [self._read() for _ in cmds]

    def close(self):
        self.s.close()


def http_req(port, method, path, body=None):
    r = urllib.request.Request("http://127.0.0.1:%d%s" % (port, path), data=body, method=method)
    with urllib.request.urlopen(r, timeout=10) as f:
        return f.read().decode()
