#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-3-Clause
"""Soak: mixed load with faults for a long time; memory must not creep.

    python3 bench/soak.py [--minutes 30] [--build build]

Starts on loopback and free ports a redis-server, the example upstream and
one cachasided; four load processes read 2 000 keys of two namespaces (short
TTLs, so misses never stop), update fields, delete and invalidate; a fault
loop restarts redis-server, makes the upstream fail or slow, and reloads the
daemon, in turn. The daemon's resident memory is sampled every 10 s. Passes
when the daemon answered throughout and its RSS at the end is within 10 % of
its RSS after the warm-up (the first tenth of the run, at least 1 minute).
Not part of CI (it runs for half an hour): docs/robustness.md quotes a run.
"""
import argparse
import json
import multiprocessing
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "hostile"))
from hostile import Conn, enc, free_port, rss_kb, wait_port  # noqa: E402
from valgrind import http, start_redis  # noqa: E402


def loader(port, seed, stop, counts):
    rnd = random.Random(seed)
    c = None
    while not stop.is_set():
        try:
            if c is None:
                c = Conn(port, 10)
            batch = []
            for _ in range(50):
                x = rnd.random()
                k = rnd.randint(1, 2000)
                if x < 0.55:
                    batch.append(enc("HGETALL", "product:p-%04d" % k))
                elif x < 0.75:
                    batch.append(enc("HGET", "product:p-%04d" % k, "name"))
                elif x < 0.90:
                    batch.append(enc("GET", "page:p-%04d" % k))
                elif x < 0.95:
                    batch.append(enc("HSET", "product:p-%04d" % k, "stock", str(k)))
                elif x < 0.99:
                    batch.append(enc("DEL", "product:p-%04d" % k))
                else:
                    batch.append(enc("INVALIDATE", "page:p-%02d*" % rnd.randint(0, 20)))
            c.s.sendall(b"".join(batch))
            for _ in batch:
                r = c.reply()
                with counts.get_lock():
                    counts[0] += 1
                    if isinstance(r, str) and r.startswith("-"):
                        counts[1] += 1
        except (OSError, EOFError, ValueError):
            with counts.get_lock():
                counts[2] += 1
            try:
                c.close()
            except Exception:
                pass
            c = None
            time.sleep(0.2)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--minutes", type=float, default=30.0)
    ap.add_argument("--build", default="build")
    ap.add_argument("--json", default="")
    a = ap.parse_args()
    daemon_bin = os.environ.get("CACHASIDED_BIN", os.path.join(a.build, "src", "cachasided"))
    up_bin = os.environ.get("CACHASIDED_UPSTREAM_BIN", os.path.join(a.build, "tests", "cachasided-example-upstream"))
    redis_bin = os.environ.get("REDIS_SERVER") or shutil.which("redis-server") or "redis-server"
    tmp = tempfile.mkdtemp(prefix="cachasided-soak-")
    procs, loaders = [], []
    stop = multiprocessing.Event()
    counts = multiprocessing.Array("q", 3)   # replies, error replies, reconnects
    samples = []
    ok = False
    redis = None
    try:
        rport, uport, dport = free_port(), free_port(), free_port()
        redis = start_redis(redis_bin, rport, tmp)
        procs.append(subprocess.Popen([up_bin, "-p", str(uport), "-g", "2000", "-l", "2", "-q"],
                                      stderr=open(os.path.join(tmp, "upstream.log"), "w")))
        wait_port(uport, procs[-1], "example upstream")
        conf = os.path.join(tmp, "cachasided.ini")
        with open(conf, "w") as f:
            f.write("""[server]
listen = 127.0.0.1:%d
log_level = notice
[redis]
port = %d
[cache]
ttl_s = 5
negative_ttl_s = 2
grace_s = 5
lock_ttl_ms = 3000
upstream_timeout_ms = 2000
[namespace:product]
upstream = http://127.0.0.1:%d/products/{id}
[namespace:page]
upstream = http://127.0.0.1:%d/pages/{id}
format = raw
""" % (dport, rport, uport, uport))
        daemon = subprocess.Popen([daemon_bin, "-c", conf], stderr=open(os.path.join(tmp, "daemon.log"), "w"))
        procs.append(daemon)
        wait_port(dport, daemon, "cachasided")
        for i in range(4):
            p = multiprocessing.Process(target=loader, args=(dport, i, stop, counts), daemon=True)
            p.start()
            loaders.append(p)
        t0 = time.time()
        total = a.minutes * 60.0
        warm = max(60.0, total / 10.0)
        faults = ["redis restart", "upstream 500", "upstream slow", "reload", "none"]
        fi, next_fault, warm_rss = 0, t0 + 20, None
        while time.time() - t0 < total:
            time.sleep(10)
            if daemon.poll() is not None:
                raise SystemExit("the daemon died (status %s)" % daemon.returncode)
            rss = rss_kb(daemon.pid)
            el = time.time() - t0
            samples.append((round(el), rss, counts[0], counts[1], counts[2]))
            print("%6.0f s  RSS %6d KiB  replies %9d  error replies %7d  reconnects %d"
                  % (el, rss, counts[0], counts[1], counts[2]), flush=True)
            if warm_rss is None and el >= warm:
                warm_rss = rss
            if time.time() >= next_fault:
                f = faults[fi % len(faults)]
                fi += 1
                next_fault = time.time() + 30
                print("         fault: " + f, flush=True)
                if f == "redis restart":
                    redis.kill()
                    redis.wait()
                    time.sleep(2)
                    redis = start_redis(redis_bin, rport, tmp)
                elif f == "upstream 500":
                    for k in range(1, 200):
                        http(uport, "PUT", "/_status/p-%04d" % k, b"500")
                    time.sleep(5)
                    for k in range(1, 200):
                        http(uport, "DELETE", "/_status/p-%04d" % k)
                elif f == "upstream slow":
                    http(uport, "PUT", "/_latency", b"1500")
                    time.sleep(5)
                    http(uport, "PUT", "/_latency", b"2")
                elif f == "reload":
                    daemon.send_signal(signal.SIGHUP)
        stop.set()
        for p in loaders:
            p.join(15)
        end_rss = rss_kb(daemon.pid)
        c = Conn(dport)
        alive = c.cmd("PING") == "+PONG"
        c.close()
        growth = (end_rss - warm_rss) / float(warm_rss) * 100.0
        ok = alive and growth <= 10.0
        print("soak: %.0f min, %d replies (%d error replies, %d reconnects); RSS after warm-up %d KiB, at the end "
              "%d KiB (%+.1f %%): %s" % (a.minutes, counts[0], counts[1], counts[2], warm_rss, end_rss, growth,
                                          "PASS" if ok else "FAIL"))
        if a.json:
            with open(a.json, "w") as f:
                json.dump({"minutes": a.minutes, "warm_rss_kb": warm_rss, "end_rss_kb": end_rss,
                           "growth_pct": growth, "replies": counts[0], "error_replies": counts[1],
                           "reconnects": counts[2], "samples": samples}, f, indent=1)
    finally:
        stop.set()
        for p in loaders:
            if p.is_alive():
                p.kill()
        for p in procs + ([redis] if redis else []):
            if p.poll() is None:
                p.kill()
                p.wait()
        shutil.rmtree(tmp, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
