#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-3-Clause
"""The daemon under valgrind's memcheck through a scripted workload.

Starts a redis-server, the example upstream and cachasided under
`valgrind --tool=memcheck --leak-check=full`, drives every command and
failure path a user can reach (hits, misses, coalesced misses, not-found,
upstream errors, writes, invalidation, protocol errors, clients that leave
mid-request, Redis going away and coming back, a reload, shutdown with work
in flight), then stops the daemon with SIGTERM and requires zero memcheck
errors and zero definitely or indirectly lost bytes. Exits non-zero
otherwise, printing valgrind's summary.
"""
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.dont_write_bytecode = True     # keep the source tree clean
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from cstest import Conn, daemon_ini, enc, free_port, http_raw as http, wait_port  # noqa: E402


def expect(cond, what):
    if not cond:
        raise SystemExit("workload step failed: " + what)


def start_redis(redis_bin, port, tmp):
    p = subprocess.Popen([redis_bin, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                          "--appendonly", "no", "--logfile", os.path.join(tmp, "redis.log")])
    wait_port(port, p, "redis-server")
    return p


def workload(dport, uport, rport, redis_bin, tmp, daemon):
    c = Conn(dport, 30)
    expect(c.cmd("PING") == "+PONG", "PING")
    # Cold reads, then hits, in every read command.
    for i in range(1, 21):
        expect(isinstance(c.cmd("HGETALL", "product:p-%03d" % i), list), "HGETALL miss")
    for i in range(1, 21):
        expect(isinstance(c.cmd("HGET", "product:p-%03d" % i, "name"), bytes), "HGET hit")
    expect(isinstance(c.cmd("HMGET", "product:p-001", "name", "price", "nope"), list), "HMGET")
    expect(isinstance(c.cmd("GET", "page:p-001"), bytes), "GET raw")
    expect(isinstance(c.cmd("MGET", "page:p-001", "page:p-002", "page:p-003"), list), "MGET")
    expect(c.cmd("HGETALL", "product:none") == [], "not found")
    expect(c.cmd("HGETALL", "product:none") == [], "negative hit")
    c.cmd("TTL", "product:p-001")
    c.cmd("PTTL", "product:p-001")
    expect(c.cmd("HSET", "product:p-001", "stock", "7") == 1, "HSET")
    expect(c.cmd("DEL", "product:p-002", "product:p-003") == 2, "DEL")
    c.cmd("UNLINK", "product:p-004")
    expect(isinstance(c.cmd("INVALIDATE", "product:p-01*"), int), "INVALIDATE")
    expect(isinstance(c.cmd("STATS"), bytes), "STATS")
    expect(c.cmd("STATS", "RESET") == "+OK", "STATS RESET")
    for bad in (("NOSUCH",), ("HGET", "product:p-001"), ("HGET", "nons:x", "f"), ("HGET", "bad", "f"),
                ("GET", "product:p-001"), ("HSET", "product:p-001", "__exp", "1")):
        expect(str(c.cmd(*bad)).startswith("-"), "error reply for %r" % (bad,))
    # Pipelined hits and misses on one connection.
    c.s.sendall(b"".join(enc("HGET", "product:p-%03d" % i, "name") for i in range(1, 60)))
    for _ in range(1, 60):
        c.reply()
    # Upstream failure modes.
    http(uport, "PUT", "/_status/p-070", b"503")
    expect(str(c.cmd("HGETALL", "product:p-070")).startswith("-UPSTREAM"), "upstream 503")
    http(uport, "PUT", "/_records/p-071", b"not json")
    expect(str(c.cmd("HGETALL", "product:p-071")).startswith("-UPSTREAM"), "bad body")
    # Coalesced misses: 20 clients on one cold key with a slow upstream.
    http(uport, "PUT", "/_latency", b"300")
    cs = [Conn(dport, 30) for _ in range(20)]
    for x in cs:
        x.s.sendall(enc("HGETALL", "product:p-080"))
    for x in cs:
        expect(isinstance(x.reply(), list), "coalesced miss")
        x.close()
    # Clients that leave while their miss is in flight.
    for i in range(10):
        x = Conn(dport, 30)
        x.s.sendall(enc("HGETALL", "product:p-%03d" % (81 + i)))
        x.close()
    time.sleep(0.6)
    # Protocol errors close only that client.
    for frame in (b"*abc\r\n", b"*1\r\n$-5\r\n", b"PING " + b"x" * 70000 + b"\r\n"):
        x = Conn(dport, 10)
        x.s.sendall(frame)
        expect(str(x.reply()).startswith("-ERR protocol error"), "protocol error")
        x.close()
    http(uport, "PUT", "/_latency", b"0")
    # Redis goes away: reads from the upstream, writes TRYAGAIN; then back.
    redis = workload.redis
    redis.kill()
    redis.wait()
    time.sleep(0.5)
    expect(isinstance(c.cmd("HGETALL", "product:p-050"), list), "read with Redis down")
    expect(str(c.cmd("DEL", "product:p-050")).startswith("-TRYAGAIN"), "DEL with Redis down")
    workload.redis = start_redis(redis_bin, rport, tmp)
    end = time.time() + 30
    while time.time() < end:
        c.cmd("HGETALL", "product:p-051")
        ttl = c.cmd("TTL", "product:p-051")     # -TRYAGAIN until reconnected
        if isinstance(ttl, int) and ttl > 0:
            break
        time.sleep(0.3)
    expect(isinstance(ttl, int) and ttl > 0, "cache used again after Redis came back")
    # A reload, then more reads.
    daemon.send_signal(signal.SIGHUP)
    time.sleep(1.0)
    expect(isinstance(c.cmd("HGETALL", "product:p-052"), list), "read after reload")
    expect(c.cmd("QUIT") == "+OK", "QUIT")
    c.close()
    # Shutdown with a slow miss in flight.
    http(uport, "PUT", "/_latency", b"500")
    x = Conn(dport, 30)
    x.s.sendall(enc("HGETALL", "product:p-099"))
    time.sleep(0.1)


def main():
    daemon_bin = os.environ.get("CACHASIDED_BIN", "src/cachasided")
    up_bin = os.environ.get("CACHASIDED_UPSTREAM_BIN", "tests/cachasided-example-upstream")
    redis_bin = os.environ.get("REDIS_SERVER") or shutil.which("redis-server") or "redis-server"
    if not shutil.which("valgrind"):
        raise SystemExit("valgrind is not installed (Debian package valgrind)")
    tmp = tempfile.mkdtemp(prefix="cachasided-valgrind-")
    procs = []
    status = 1
    try:
        rport, uport, dport = free_port(), free_port(), free_port()
        workload.redis = start_redis(redis_bin, rport, tmp)
        procs.append(subprocess.Popen([up_bin, "-p", str(uport), "-g", "100", "-q"],
                                      stderr=open(os.path.join(tmp, "upstream.log"), "w")))
        wait_port(uport, procs[-1], "example upstream")
        conf = daemon_ini(os.path.join(tmp, "cachasided.ini"), dport, rport, uport,
                          server={"log_level": "info", "shutdown_grace_ms": 2000},
                          redis={"command_timeout_ms": 2000, "connect_timeout_ms": 2000},
                          cache={"ttl_s": 60, "lock_ttl_ms": 5000, "upstream_timeout_ms": 3000})
        vlog = os.path.join(tmp, "valgrind.log")
        daemon = subprocess.Popen(["valgrind", "--tool=memcheck", "--leak-check=full",
                                   "--show-leak-kinds=definite,indirect", "--errors-for-leak-kinds=definite,indirect",
                                   "--error-exitcode=99", "--log-file=" + vlog, daemon_bin, "-c", conf],
                                  stderr=open(os.path.join(tmp, "daemon.log"), "w"))
        procs.append(daemon)
        wait_port(dport, daemon, "cachasided under valgrind", timeout=60)
        t0 = time.time()
        workload(dport, uport, rport, redis_bin, tmp, daemon)
        daemon.send_signal(signal.SIGTERM)
        rc = daemon.wait(60)
        log = open(vlog).read()
        summary = re.findall(r"ERROR SUMMARY: (\d+) errors", log)
        definite = re.findall(r"definitely lost: ([\d,]+) bytes", log)
        indirect = re.findall(r"indirectly lost: ([\d,]+) bytes", log)
        errors = int(summary[-1]) if summary else -1
        lost = sum(int(x.replace(",", "")) for x in definite + indirect)
        print("valgrind memcheck: workload %.1f s, daemon exit %d, %d errors, %d bytes definitely/indirectly lost"
              % (time.time() - t0, rc, errors, lost))
        if rc != 0 or errors != 0 or lost != 0:
            print(log[-6000:])
        else:
            status = 0
    finally:
        for p in procs + [workload.redis]:
            if p.poll() is None:
                p.kill()
                p.wait()
        if status and os.environ.get("CACHASIDED_KEEP_TMP"):
            print("logs kept in " + tmp)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    print("valgrind: %d passed, %d failed" % (1 - status, status))
    return status


if __name__ == "__main__":
    sys.exit(main())
