#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-3-Clause
"""The dashboard as a room of engineers sees it, in headless Chromium, and
the daemons sharing one Redis (GET /daemons, docs/admin.md), run by `make check`.

A real redis-server, the example upstream and one or more daemons on
loopback and free ports: the hit ratio and coalesced reads after a
stampede, the requests/s card and its chart, the record after an update,
and the list of daemons from their heartbeats (a stampede across two
daemons, one that stops, one that dies).
"""
import json
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import time
import unittest

sys.dont_write_bytecode = True     # keep the source tree clean
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cstest import Conn, daemon_ini, free_port, wait_port  # noqa: E402
from test_admin import DAEMON, Stack, http  # noqa: E402


def add_daemon(s, name):
    """One more daemon on S's redis-server and upstream: (process, port, admin port)."""
    port, aport = free_port(), free_port()
    conf = daemon_ini(os.path.join(s.tmp, name + ".ini"), port, s.rport, s.uport,
                      server={"admin_listen": "127.0.0.1:%d" % aport, "admin_demo": "yes"},
                      cache={"ttl_s": 60, "lock_ttl_ms": 3000, "upstream_timeout_ms": 2000})
    p = subprocess.Popen([DAEMON, "-c", conf], stderr=open(os.path.join(s.tmp, name + ".log"), "w"))
    s.procs.append(p)
    wait_port(port, p, name)
    wait_port(aport, p, name + " admin")
    return p, port, aport


def daemons(aport):
    st, _, body = http(aport, "GET", "/daemons")
    assert st == 200, (st, body)
    return json.loads(body)


def wait_daemons(aport, pred, timeout=15.0):
    """/daemons once PRED holds of it (heartbeats come every 2 s)."""
    end = time.time() + timeout
    while True:
        d = daemons(aport)
        if pred(d) or time.time() > end:
            return d
        time.sleep(0.2)


def cell_texts(dom, table_id):
    """The rows of the table with id TABLE_ID's tbody, as lists of cell texts."""
    m = re.search(r'<table id="%s"[^>]*>(.*?)</table>' % table_id, dom, re.S)
    assert m, "no table %s in the page" % table_id
    body = m.group(1).split("<tbody>", 1)[1]
    return [re.findall(r"<td>(.*?)</td>", row, re.S) for row in re.findall(r"<tr[^>]*>(.*?)</tr>", body, re.S)]


def card(dom, cid):
    m = re.search(r'id="%s"[^>]*>([^<]*)<' % cid, dom)
    assert m, "no card %s in the page" % cid
    return m.group(1)


def data_attr(dom, eid, attr):
    m = re.search(r'<[^>]*id="%s"[^>]*>' % eid, dom)
    assert m, "no element %s in the page" % eid
    v = re.search(r'data-%s="([^"]*)"' % attr, m.group(0))
    return v.group(1) if v else None


class Browser:
    """Headless Chromium driven over --remote-debugging-pipe (fds 3 and 4,
    JSON messages ended by NUL), to ask a page where its boxes are."""

    def __init__(self, exe, profile, width=1280):
        to_r, self.to_w = os.pipe()
        self.from_r, from_w = os.pipe()

        def fds():
            os.dup2(to_r, 3)
            os.dup2(from_w, 4)
        self.p = subprocess.Popen([exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                                   "--user-data-dir=" + profile, "--remote-debugging-pipe",
                                   "--window-size=%d,900" % width], pass_fds=(3, 4), preexec_fn=fds,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(to_r)
        os.close(from_w)
        self.buf, self.n, self.session = b"", 0, None

    def call(self, method, **params):
        self.n += 1
        msg = {"id": self.n, "method": method, "params": params}
        if self.session:
            msg["sessionId"] = self.session
        os.write(self.to_w, json.dumps(msg).encode() + b"\0")
        end = time.time() + 30
        while time.time() < end:
            while b"\0" in self.buf:
                m, self.buf = self.buf.split(b"\0", 1)
                m = json.loads(m)
                if m.get("id") == self.n:
                    if "error" in m:
                        raise RuntimeError("%s: %s" % (method, m["error"]))
                    return m["result"]
            select.select([self.from_r], [], [], 1)
            self.buf += os.read(self.from_r, 1 << 20)
        raise TimeoutError(method)

    def open(self, url):
        t = self.call("Target.createTarget", url=url)
        self.session = self.call("Target.attachToTarget", targetId=t["targetId"], flatten=True)["sessionId"]

    def eval(self, js):
        return self.call("Runtime.evaluate", expression=js, returnByValue=True)["result"].get("value")

    def close(self):
        self.p.kill()
        self.p.wait()
        os.close(self.to_w)
        os.close(self.from_r)


class Dashboard(unittest.TestCase):
    maxDiff = None

    def browser(self, s, budget=8000):
        browser = shutil.which("chromium") or shutil.which("chromium-browser")
        self.assertIsNotNone(browser, "chromium is not installed (Debian package chromium)")
        return [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--user-data-dir=" + os.path.join(s.tmp, "profile"), "--virtual-time-budget=%d" % budget]

    def dom(self, s, query, budget=8000):
        p = subprocess.run(self.browser(s, budget) + ["--dump-dom", "http://127.0.0.1:%d/%s" % (s.aport, query)],
                           capture_output=True, timeout=120)
        dom = p.stdout.decode(errors="replace")
        self.assertIn('id="stampede-result"', dom, "chromium did not render the page: " + p.stderr.decode()[-800:])
        return dom

    def test_hit_ratio_and_coalesced_after_a_stampede(self):
        # Before: one "hit rate" card from hit_rate_pct, no coalesced reads
        # of their own, and a requests/s card that said 0 beside a spike.
        s = Stack()
        try:
            c = Conn(s.port)
            for _ in range(10):
                self.assertIsInstance(c.cmd("HGETALL", "product:p-070"), list)     # 1 miss, 9 hits
            c.close()
            dom = self.dom(s, "?run=stampede&n=50&key=product:p-071")
            self.assertEqual(data_attr(dom, "stampede-result", "upstream"), "1")
            st = s.stats()
            self.assertEqual((st["hits"], st["misses"], st["coalesced"]), (9, 51, 49))
            self.assertEqual(card(dom, "c-hitrate"), "%.1f %%" % (100 * 9 / 60))
            self.assertIn("9 of 60 reads from the cache", dom)
            self.assertEqual(card(dom, "c-coalesced"), "49")
            # The stampede is within the card's 10 s: not 0, and the chart's last point.
            rps = float(data_attr(dom, "c-rps", "value"))
            self.assertGreater(rps, 0)
            self.assertAlmostEqual(float(data_attr(dom, "ch-rps", "last")), rps)
            self.assertAlmostEqual(float(data_attr(dom, "ch-hitrate", "last")), 100 * 9 / 60)
        finally:
            s.close()

    def test_health_badge_shows_degraded_with_redis_down(self):
        # Redis down: the daemon still answers from the upstream, so the
        # badge says degraded (from /readyz), not that the daemon is down.
        s = Stack()
        try:
            dom = self.dom(s, "")
            self.assertEqual(re.search(r'id="health" class="badge ok">([^<]*)<', dom).group(1), "Redis OK")
            s.stop_redis()
            time.sleep(0.3)
            dom = self.dom(s, "")
            m = re.search(r'id="health" class="badge (\w+)">([^<]*)<', dom)
            self.assertIsNotNone(m, dom[:2000])
            self.assertEqual(m.group(1), "warn")
            self.assertTrue(m.group(2).startswith("ok, degraded: redis: "), m.group(2))
        finally:
            s.close()

    def test_record_after_update_shows_every_field(self):
        # Before: the panel kept the record from before the update, as a raw
        # array cut after four fields.
        s = Stack()
        try:
            record = {"f%02d" % i: "value %d" % i for i in range(9)}
            record["stock"] = "3"
            record["note"] = "<b onmouseover=alert(1)>bold</b> & more"
            s.upstream_put("/_records/w-1", json.dumps(record).encode())
            c = Conn(s.port)
            self.assertIsInstance(c.cmd("HGETALL", "product:w-1"), list)      # cached
            c.close()
            dom = self.dom(s, "?run=update&key=product:w-1&field=stock&value=7")
            self.assertIn("updated in the cache", dom)
            rows = dict(cell_texts(dom, "record"))
            want = dict(record, stock="7", note="&lt;b onmouseover=alert(1)&gt;bold&lt;/b&gt; &amp; more")
            self.assertEqual(rows, want)
            self.assertNotIn("<b onmouseover", dom)
        finally:
            s.close()

    def test_charts_line_up_with_the_cards(self):
        # Before: two 560-pixel canvases in a flex row, under six cards in a
        # grid: their edges matched no card's, and the right one ended short.
        s = Stack()
        try:
            exe = shutil.which("chromium") or shutil.which("chromium-browser")
            self.assertIsNotNone(exe, "chromium is not installed (Debian package chromium)")
            for width in (1280, 1600):
                b = Browser(exe, os.path.join(s.tmp, "profile-%d" % width), width)
                try:
                    b.open("http://127.0.0.1:%d/" % s.aport)
                    box = None
                    end = time.time() + 20
                    while time.time() < end and not box:
                        time.sleep(0.3)
                        box = b.eval("""document.getElementById('uptime').textContent !== '' &&
                            JSON.stringify({cards: [...document.querySelectorAll('.card')].map(e => e.getBoundingClientRect()),
                                            charts: [...document.querySelectorAll('.charts figure')].map(e => e.getBoundingClientRect()),
                                            canvas: [...document.querySelectorAll('.charts canvas')].map(e => [e.width, e.clientWidth])})""")
                    self.assertTrue(box, "the page did not load")
                    box = json.loads(box)
                    cards, charts = box["cards"], box["charts"]
                    self.assertEqual(len(charts), 2)
                    # Each chart spans three cards exactly (to the pixel), in the cards' row.
                    for chart, first, last in ((charts[0], cards[0], cards[2]), (charts[1], cards[3], cards[5])):
                        self.assertLess(abs(chart["left"] - first["left"]), 1, (width, chart, first))
                        self.assertLess(abs(chart["right"] - last["right"]), 1, (width, chart, last))
                    # Drawn at the size shown, not stretched.
                    for w, shown in box["canvas"]:
                        self.assertEqual(w, shown)
                finally:
                    b.close()
        finally:
            s.close()

    def test_two_daemons_listed_and_a_stampede_across_them(self):
        s = Stack()
        try:
            b, bport, baport = add_daemon(s, "b")
            c = Conn(bport)
            for _ in range(3):
                self.assertIsInstance(c.cmd("HGETALL", "product:p-080"), list)   # on b: 1 miss, 2 hits
            c.close()
            d = wait_daemons(s.aport, lambda d: len(d["daemons"]) == 2 and any(
                x["counters"]["reads"] == 3 for x in d["daemons"]))
            byport = {x["listen"]: x for x in d["daemons"]}
            self.assertEqual(set(byport), {"127.0.0.1:%d" % s.port, "127.0.0.1:%d" % bport})
            self.assertEqual({k: byport["127.0.0.1:%d" % bport]["counters"][k] for k in ("reads", "hits", "misses",
                              "upstream_requests")}, {"reads": 3, "hits": 2, "misses": 1, "upstream_requests": 1})
            dom = self.dom(s, "?run=stampede&n=40&across=yes&key=product:p-081", budget=12000)
            self.assertEqual(data_attr(dom, "stampede-result", "upstream"), "1", dom[-3000:])
            self.assertEqual(data_attr(dom, "stampede-result", "readers"), "40")
            rows = cell_texts(dom, "stampede-daemons")
            self.assertEqual(sorted(r[0] for r in rows), sorted(byport))
            self.assertEqual([r[1] for r in rows], ["20", "20"])                          # readers per daemon
            self.assertEqual(sorted(r[2] for r in rows), ["0", "1"])                      # one upstream read
            # The daemons table: both, their counters, and the totals.
            self.assertEqual(data_attr(dom, "daemons", "count"), "2")
            listed = cell_texts(dom, "daemons")
            self.assertEqual(sorted(r[0] for r in listed[:2]), sorted(byport))
            self.assertEqual(listed[2][0], "2 daemons")
            shot = os.environ.get("CACHASIDED_SCREENSHOT")
            if shot:
                p = subprocess.run(self.browser(s, 12000) + ["--window-size=1280,1250", "--screenshot=" + shot,
                               "http://127.0.0.1:%d/?run=stampede&n=50&across=yes&key=product:p-082" % s.aport],
                               capture_output=True, timeout=120)
                self.assertTrue(os.path.getsize(shot) > 10000, "no screenshot: " + p.stderr.decode()[-500:])
        finally:
            s.close()

    def test_daemons_json_and_stopped_daemons_disappear(self):
        s = Stack()
        try:
            b, bport, _ = add_daemon(s, "b")
            k, kport, _ = add_daemon(s, "k")
            d = wait_daemons(s.aport, lambda d: len(d["daemons"]) == 3)
            self.assertEqual(len(d["daemons"]), 3, d)
            self.assertEqual((d["key"], d["every_ms"], d["expire_ms"]), ("cache:daemons", 2000, 10000))
            me = [x for x in d["daemons"] if x["self"]]
            self.assertEqual([x["id"] for x in me], [d["self"]])
            self.assertEqual(me[0]["pid"], s.daemon.pid)
            self.assertEqual(me[0]["admin"], "127.0.0.1:%d" % s.aport)
            for x in d["daemons"]:
                self.assertLess(x["age_ms"], 10000)
                self.assertEqual(set(x["counters"]), {"reads", "hits", "stale_hits", "negative_hits", "misses",
                                                      "coalesced", "stampedes_suppressed", "upstream_requests",
                                                      "clients_connected"})
            # A clean stop removes its entry at once.
            b.send_signal(signal.SIGTERM)
            self.assertEqual(b.wait(10), 0)
            left = {x["listen"] for x in daemons(s.aport)["daemons"]}
            self.assertNotIn("127.0.0.1:%d" % bport, left)
            self.assertEqual(len(left), 2)
            # One that dies is left out once its heartbeat is 10 s old, and removed.
            k.kill()
            k.wait()
            t0 = time.time()
            d = wait_daemons(s.aport, lambda d: len(d["daemons"]) == 1, timeout=15)
            self.assertEqual([x["self"] for x in d["daemons"]], [True], "after %.1f s" % (time.time() - t0))
            r = Conn(s.rport)
            self.assertEqual(r.cmd("HLEN", "cache:daemons"), 1)
            r.close()
            # Redis down: 503 with the reason, not a stale list.
            s.stop_redis()
            time.sleep(0.3)
            st, _, body = http(s.aport, "GET", "/daemons")
            self.assertEqual(st, 503)
            self.assertTrue(json.loads(body)["error"].startswith("redis: "), body)
        finally:
            s.close()


if __name__ == "__main__":
    unittest.main(verbosity=2)
