# SPDX-License-Identifier: BSD-3-Clause
"""Processes and wire protocols for the fault suite (tests/faults/README.md):
redis-server and the example upstream as child processes, and the
fault-injecting HTTP proxy between the daemons and the upstream.  The RESP
client is tests/cstest.py's (faults.py puts tests/ on sys.path).  Standard
library only.
"""
import http.client
import json
import os
import random
import select
import signal
import socket
import struct
import subprocess
import threading
import time
import urllib.parse

from cstest import Conn, free_port


def now():
    return time.monotonic()


def wait_ping(port, timeout):
    end = now() + timeout
    while now() < end:
        try:
            c = Conn(port, 1.0)
            r = c.cmd("PING")
            c.close()
            if r == "+PONG":
                return True
        except (OSError, ConnectionError):
            pass
        time.sleep(0.05)
    return False


# ---- the fault-injecting HTTP proxy ----
#
# One listening port per daemon (so every read is attributed to its
# daemon).  Each request is forwarded to the example upstream on a fresh
# connection; the answer is rewritten with the version field and sent back,
# possibly with the current fault applied.  While the upstream is slow the
# proxy watches the daemon's side, so a read ends when the daemon gives up.
def decoy_response(ids, rid):
    other = random.choice([i for i in ids if i != rid])
    body = json.dumps({"id": other, "name": "decoy", "ver": -1}, separators=(",", ":")).encode()
    return (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"
            % len(body)) + body


def rst_close(conn):
    try:
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    conn.close()


class Proxy:
    def __init__(self, up_port, ndaemons, ids, book):
        self.up_port = up_port
        self.ids, self.book = ids, book
        self.mode = None
        self.rate = 0.0
        self.made = {}              # namespace -> latency (s): the proxy makes its records itself
        self.ports = []
        self.socks = []
        for d in range(ndaemons):
            s = socket.socket()
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("127.0.0.1", 0))
            s.listen(128)
            self.socks.append(s)
            self.ports.append(s.getsockname()[1])
            threading.Thread(target=self.accept_loop, args=(s, d), daemon=True).start()

    def set_fault(self, mode, rate):
        self.mode, self.rate = mode, rate

    def accept_loop(self, s, d):
        while True:
            try:
                c, _ = s.accept()
            except OSError:
                return
            threading.Thread(target=self.conn_loop, args=(c, d), daemon=True).start()

    def conn_loop(self, conn, d):
        buf = b""
        try:
            while True:
                while b"\r\n\r\n" not in buf:
                    data = conn.recv(65536)
                    if not data:
                        conn.close()
                        return
                    buf += data
                head, buf = buf.split(b"\r\n\r\n", 1)
                path = head.split(b"\r\n", 1)[0].split(b" ")[1].decode("latin-1")
                parts = path.split("/")
                ns, rid = parts[1], urllib.parse.unquote(parts[2])
                if not self.serve(conn, d, ns, rid, path):
                    return
        except (OSError, IndexError, ValueError):
            try:
                conn.close()
            except OSError:
                pass

    def fetch(self, conn, path):
        """(status, body) from the example upstream, or (None, reason)."""
        u = socket.create_connection(("127.0.0.1", self.up_port), timeout=10)
        try:
            u.sendall(("GET %s HTTP/1.1\r\nHost: upstream\r\nConnection: close\r\n\r\n" % path).encode())
            data = b""
            watch = [u, conn]
            end = now() + 10
            while now() < end:
                r, _, _ = select.select(watch, [], [], 0.5)
                if conn in r:
                    try:
                        peek = conn.recv(1, socket.MSG_PEEK)
                    except OSError:
                        peek = b""
                    if not peek:
                        return None, "daemon-gone"
                    watch = [u]
                if u in r:
                    chunk = u.recv(65536)
                    if not chunk:
                        break
                    data += chunk
            head, _, body = data.partition(b"\r\n\r\n")
            return int(head.split(b" ")[1]), body
        except (OSError, IndexError, ValueError):
            return None, "upstream-error"
        finally:
            u.close()

    def serve(self, conn, d, ns, rid, path):
        key = "%s:%s" % (ns, rid)
        rec = self.book.begin(d, key, ns)
        mode = self.mode if self.mode and random.random() < self.rate else None
        rec["fault"] = mode
        if mode == "reset" and random.random() < 0.5:
            self.book.end(rec, "reset")
            rst_close(conn)
            return False
        if ns in self.made:         # any id exists, as {"id": ..., "name": ...}
            time.sleep(self.made[ns])
            status, body = 200, json.dumps({"id": rid, "name": "made by the proxy"}).encode()
        else:
            status, body = self.fetch(conn, path)
        if status is None:
            self.book.end(rec, body)
            conn.close()
            return False
        if status == 200:
            obj = json.loads(body)
            obj["ver"] = rec["ver"]
            body = json.dumps(obj, separators=(",", ":")).encode()
        reason = {200: b"OK", 404: b"Not Found"}.get(status, b"Error")
        head = b"HTTP/1.1 %d %s\r\nContent-Type: application/json\r\n" % (status, reason)
        full = head + b"Content-Length: %d\r\n\r\n" % len(body) + body
        keep = True
        if mode == "reset":          # status line, then a reset
            out = full[:20]
        elif mode == "truncate":     # half the promised body, then close
            out = head + b"Content-Length: %d\r\n\r\n" % len(body) + body[:len(body) // 2]
            keep = False
        elif mode == "interim":      # 103 Early Hints in front of the answer
            out = b"HTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\n\r\n" + full
        elif mode == "surplus":      # a well-formed answer for another key behind it
            out = full + decoy_response(self.ids, rid)
        elif mode == "dupcl":        # two Content-Lengths: the first one ends before the decoy
            dec = decoy_response(self.ids, rid)
            out = (head + b"Content-Length: %d\r\nContent-Length: %d\r\n\r\n"
                   % (len(body), len(body) + len(dec)) + body + dec)
        else:
            out = full
        if status == 200 and mode not in ("reset", "truncate"):
            with self.book.lock:
                self.book.served.add((key, rec["ver"]))
        try:
            conn.sendall(out)
        except OSError:
            keep = False
        self.book.end(rec, status if mode is None else "%s/%s" % (status, mode))
        if mode == "reset":
            rst_close(conn)
            return False
        if not keep:
            conn.close()
        return keep


# ---- processes ----
class Redis:
    """A redis-server; NAME names its log, EXTRA are more arguments (a
    node of a Sentinel or Cluster set-up), replicaof (host, port) makes the
    next start a replica.  With Redis.tls (a cstest.TestCA, faults.py --tls)
    every server listens on a TLS port only, replicates and, in a cluster,
    talks on its bus over TLS."""
    tls = None

    def __init__(self, binary, workdir, name="redis", extra=()):
        self.bin = binary
        self.port = free_port()
        self.logpath = os.path.join(workdir, name + ".log")
        self.extra = list(extra)
        self.replicaof = None
        self.proc = None
        self.cluster = False

    def start(self):
        logf = open(self.logpath, "a")
        if self.tls:
            self.tls.register(self.port)
            ports = self.tls.redis_args(self.port, self.cluster)
        else:
            ports = ["--port", str(self.port)]
        args = [self.bin] + ports + ["--bind", "127.0.0.1", "--save", "",
                                     "--appendonly", "no", "--enable-debug-command", "yes"] + self.extra
        if self.replicaof:
            args += ["--replicaof", self.replicaof[0], str(self.replicaof[1])]
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=logf, stderr=logf)
        logf.close()
        if not wait_ping(self.port, 10):
            raise RuntimeError("redis-server did not start; log %s" % self.logpath)

    def kill(self):
        self.proc.kill()
        self.proc.wait()

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class Upstream:
    def __init__(self, binary, workdir, nkeys):
        pf = os.path.join(workdir, "upstream.port")
        self.logf = open(os.path.join(workdir, "upstream.log"), "a")
        self.proc = subprocess.Popen([binary, "-p", "0", "-P", pf, "-g", str(nkeys), "-q"],
                                     stdin=subprocess.DEVNULL, stdout=self.logf, stderr=self.logf)
        end = now() + 10
        while not os.path.exists(pf):
            if now() > end or self.proc.poll() is not None:
                raise RuntimeError("example upstream did not start")
            time.sleep(0.05)
        with open(pf) as f:
            self.port = int(f.read())

    def control(self, method, path, body=None):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
        c.request(method, path, body=body)
        r = c.getresponse()
        r.read()
        c.close()
        if r.status >= 300:
            raise RuntimeError("upstream control %s %s: %d" % (method, path, r.status))

    def stop(self):
        self.proc.terminate()
        self.proc.wait(10)
        self.logf.close()
