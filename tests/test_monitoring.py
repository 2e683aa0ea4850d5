#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-3-Clause
"""The shipped monitoring (contrib/, docs/monitoring.md) against a real Prometheus, run by `make check`.

promtool checks and unit-tests contrib/prometheus/alerts.yml. Then Debian's
prometheus scrapes two daemons (one redis-server, the example upstream) every
second while they are driven with hits, misses, not-founds, upstream errors
and a stampede on both at once, and evaluates the alert rules every second.
Every query of contrib/grafana/cachasided.json, with Grafana's variables
filled in, must return data from that Prometheus; every metric the dashboard
or the rules name must be on a daemon's /metrics; the rules must evaluate
without error, and the alerts that a refused reload, a restart-only change,
a Redis outage and a dead daemon should raise must become active.
"""
import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.parse
import urllib.request

sys.dont_write_bytecode = True     # keep the source tree clean
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cstest import Conn, daemon_ini, free_port, wait_port  # noqa: E402

DAEMON = os.environ.get("CACHASIDED_BIN", "src/cachasided")
UPSTREAM = os.environ.get("CACHASIDED_UPSTREAM_BIN", "tests/cachasided-example-upstream")
REDIS = os.environ.get("REDIS_SERVER") or shutil.which("redis-server") or "redis-server"
CONTRIB = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "contrib")
DASHBOARD = os.path.join(CONTRIB, "grafana", "cachasided.json")
RULES = os.path.join(CONTRIB, "prometheus", "alerts.yml")
RULES_TEST = os.path.join(CONTRIB, "prometheus", "alerts_test.yml")
PROMTOOL = shutil.which("promtool")
PROMETHEUS = shutil.which("prometheus")
NEED = "is not installed (Debian package prometheus)"

RATE_INTERVAL = "15s"      # what Grafana gives $__rate_interval for a 1 s scrape, and more
LOAD_SECONDS = 12
# Series Prometheus makes itself, not the daemon.
SCRAPE_SERIES = {"up"}
# Grafana's variables as a query of the whole set sees them: "All" is .* here.
GRAFANA_VARS = [("$__rate_interval", RATE_INTERVAL), ("$__interval", "1s"), ("$__range", "60s"),
                ("${instance}", ".*"), ("$instance", ".*"), ("${namespace}", ".*"), ("$namespace", ".*")]


def grafana_expand(expr):
    for var, value in GRAFANA_VARS:
        expr = expr.replace(var, value)
    if "$" in expr:
        raise AssertionError("a Grafana variable the test does not know in %r" % expr)
    return expr


PROMQL_WORDS = {"and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right",
                "bool", "offset", "Inf", "NaN", "inf", "nan"}


def metric_names(expr):
    """The metric names a PromQL expression selects: what is left once strings,
    label matchers, ranges, grouping lists, function and aggregation names,
    keywords and numbers are taken out."""
    e = re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'', '""', expr)
    e = re.sub(r"\{[^}]*\}", " ", e)
    e = re.sub(r"\[[^\]]*\]", " ", e)
    e = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", e)
    e = re.sub(r"\b\d[\w.]*", " ", e)                        # numbers, durations
    names = set()
    for m in re.finditer(r"[A-Za-z_:][\w:]*", e):
        if m.group(0) in PROMQL_WORDS or re.match(r"\s*\(", e[m.end():]):
            continue
        names.add(m.group(0))
    return names


def variable_metric(query):
    """label_values(METRIC{...}, LABEL) -> (METRIC{...}, LABEL)."""
    m = re.fullmatch(r"\s*label_values\((.*),\s*(\w+)\)\s*", query)
    if not m:
        raise AssertionError("variable query %r is not label_values(metric, label)" % query)
    return m.group(1), m.group(2)


def dashboard():
    with open(DASHBOARD) as f:
        d = json.load(f)
    panels = []
    for p in d["panels"]:
        panels += [p] + p.get("panels", [])          # a collapsed row holds its panels
    targets = [(p["title"], t) for p in panels for t in p.get("targets", [])]
    variables = [v for v in d["templating"]["list"] if v["type"] == "query"]
    return d, targets, variables


def rule_exprs():
    """(alert name, expr) of alerts.yml: promtool prints nothing parseable,
    so a small reader of the file's own shape (expr: one line or a | block)."""
    with open(RULES) as f:
        lines = f.read().split("\n")
    out, name = [], None
    i = 0
    while i < len(lines):
        line = lines[i]
        m = re.match(r"\s*- alert: (\S+)", line)
        if m:
            name = m.group(1)
        m = re.match(r"(\s*)expr: (.*)$", line)
        if m:
            if m.group(2).strip() == "|":
                block, ind = [], len(m.group(1))
                while i + 1 < len(lines) and (not lines[i + 1].strip() or len(lines[i + 1]) - len(lines[i + 1].lstrip()) > ind):
                    i += 1
                    block.append(lines[i].strip())
                out.append((name, " ".join(block)))
            else:
                out.append((name, m.group(2)))
        i += 1
    return out


def get(url, timeout=10):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.read()


def exposition_names(text):
    """Sample names of a /metrics body (histograms give _bucket, _sum, _count)."""
    return {re.match(r"[A-Za-z_:][\w:]*", line).group(0)
            for line in text.splitlines() if line and not line.startswith("#")}


class Rules(unittest.TestCase):
    def test_promtool_checks_and_tests_the_rules(self):
        self.assertIsNotNone(PROMTOOL, "promtool " + NEED)
        for args in (["check", "rules", RULES], ["test", "rules", RULES_TEST]):
            p = subprocess.run([PROMTOOL] + args, capture_output=True, timeout=60)
            self.assertEqual(p.returncode, 0, "promtool %s:\n%s%s" % (" ".join(args), p.stdout.decode(), p.stderr.decode()))
        # Every rule has a unit test, both ways (quiet and firing).
        with open(RULES_TEST) as f:
            tests = f.read()
        for name, _ in rule_exprs():
            self.assertRegex(tests, r"alertname: %s\n\s*exp_alerts: \[\]" % name, "%s never tested quiet" % name)
            self.assertRegex(tests, r"alertname: %s\n\s*exp_alerts:\n\s*- exp_labels" % name, "%s never tested firing" % name)


    def test_dashboard_imports_as_an_export(self):
        """What Grafana's import asks for: the data source as an input every
        query uses, panel ids unique, no panel over another."""
        d, targets, _ = dashboard()
        self.assertGreaterEqual(d["schemaVersion"], 38)
        self.assertEqual([(i["name"], i["pluginId"]) for i in d["__inputs"]], [("DS_PROMETHEUS", "prometheus")])
        for title, t in targets:
            self.assertEqual(t["datasource"], {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}, title)
        ids, cells = set(), {}
        for p in d["panels"]:
            self.assertNotIn(p["id"], ids, p["title"])
            ids.add(p["id"])
            g = p["gridPos"]
            self.assertLessEqual(g["x"] + g["w"], 24, p["title"])
            for y in range(g["y"], g["y"] + g["h"]):
                for x in range(g["x"], g["x"] + g["w"]):
                    if (x, y) in cells:
                        self.fail("panel %r lies over %r" % (p["title"], cells[(x, y)]))
                    cells[(x, y)] = p["title"]


class Live(unittest.TestCase):
    """Two daemons scraped by a real Prometheus while under load."""
    maxDiff = None

    @classmethod
    def setUpClass(cls):
        if not PROMETHEUS or not PROMTOOL:
            raise AssertionError("prometheus and promtool " + NEED)
        cls.tmp = tempfile.mkdtemp(prefix="cachasided-monitoring-")
        cls.procs = []
        try:
            cls.start()
            cls.drive()
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def spawn(cls, argv, log, port, what):
        with open(os.path.join(cls.tmp, log), "w") as f:
            p = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=f)
        cls.procs.append(p)
        wait_port(port, p, what)
        return p

    @classmethod
    def start(cls):
        cls.rport, cls.uport, cls.pport = free_port(), free_port(), free_port()
        cls.redis = cls.spawn([REDIS, "--port", str(cls.rport), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
                              "redis.log", cls.rport, "redis-server")
        cls.spawn([UPSTREAM, "-p", str(cls.uport), "-g", "5000", "-l", "20", "-s", "err-1=503", "-q"],
                  "upstream.log", cls.uport, "example upstream")
        cls.daemons = []
        for name in ("a", "b"):
            port, aport = free_port(), free_port()
            conf = daemon_ini(os.path.join(cls.tmp, name + ".ini"), port, cls.rport, cls.uport,
                              server={"admin_listen": "127.0.0.1:%d" % aport},
                              cache={"ttl_s": 300, "negative_ttl_s": 120, "lock_ttl_ms": 3000})
            p = cls.spawn([DAEMON, "-c", conf], name + ".log", port, "cachasided " + name)
            wait_port(aport, p, "admin endpoint of " + name)
            cls.daemons.append({"name": name, "port": port, "aport": aport, "conf": conf, "proc": p,
                                "instance": "127.0.0.1:%d" % aport})
        prom_conf = os.path.join(cls.tmp, "prometheus.yml")
        with open(prom_conf, "w") as f:
            f.write("global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n"
                    "rule_files:\n  - %s\n"
                    "scrape_configs:\n  - job_name: cachasided\n    static_configs:\n      - targets: [%s]\n"
                    % (json.dumps(os.path.abspath(RULES)), ", ".join('"%s"' % d["instance"] for d in cls.daemons)))
        cls.prom = cls.spawn([PROMETHEUS, "--config.file", prom_conf, "--storage.tsdb.path", os.path.join(cls.tmp, "tsdb"),
                              "--web.listen-address", "127.0.0.1:%d" % cls.pport, "--log.level", "warn"],
                             "prometheus.log", cls.pport, "prometheus")
        end = time.time() + 15
        while True:
            try:
                targets = json.loads(get(cls.api("targets")))["data"]["activeTargets"]
            except OSError:
                targets = []
            if sum(t["health"] == "up" for t in targets) == 2:
                break
            if time.time() > end:
                raise AssertionError("prometheus does not scrape both daemons: %s" % json.dumps(targets))
            time.sleep(0.2)

    @classmethod
    def api(cls, path, **params):
        return "http://127.0.0.1:%d/api/v1/%s?%s" % (cls.pport, path, urllib.parse.urlencode(params))

    @classmethod
    def drive(cls):
        """LOAD_SECONDS of reads on both daemons: hits, misses, not-found then
        negative, upstream 503s, a stampede across the two, a protocol error."""
        conns = [Conn(d["port"]) for d in cls.daemons]
        crowd = [[Conn(d["port"]) for _ in range(5)] for d in cls.daemons]
        n, end = 0, time.time() + LOAD_SECONDS
        while time.time() < end:
            for c in conns:
                n += 1
                for i in range(1, 6):                                   # cached after the first pass
                    c.cmd("HGETALL", "product:p-%04d" % i)
                    c.cmd("GET", "page:p-%04d" % i)
                c.cmd("HGETALL", "product:p-%04d" % (100 + n))           # misses
                c.cmd("GET", "page:p-%04d" % (100 + n))
                c.cmd("HGETALL", "product:nope-%d" % (n % 3))           # not found, then negative
                c.cmd("HGETALL", "product:err-1")                        # 503, never cached
            n += 1
            key = "product:p-%04d" % (1000 + n)                          # the stampede
            for group in crowd:
                for c in group:
                    c.send("HGETALL", key)
            for group in crowd:
                for c in group:
                    assert isinstance(c.reply(), list), key
            bad = Conn(cls.daemons[n % 2]["port"])
            bad.s.sendall(b"*x\r\n")
            bad.closed_after(2)
            bad.close()
        for c in conns + [c for g in crowd for c in g]:
            c.close()
        cls.metrics = {}
        for d in cls.daemons:
            cls.metrics[d["name"]] = get("http://127.0.0.1:%d/metrics" % d["aport"]).decode()
        time.sleep(2.5)                      # two more scrapes: the load is in the TSDB
        cls.at = time.time()

    @classmethod
    def tearDownClass(cls):
        for p in reversed(cls.procs):
            if p.poll() is None:
                p.kill()
                p.wait()
        if os.environ.get("CACHASIDED_KEEP_TMP"):
            print("kept", cls.tmp)
        else:
            shutil.rmtree(cls.tmp, ignore_errors=True)

    def query(self, expr, at=None):
        body = json.loads(get(self.api("query", query=expr, time="%.3f" % (at or self.at))))
        self.assertEqual(body["status"], "success", body)
        return body["data"]

    def test_every_metric_named_exists(self):
        exposed = set()
        for text in self.metrics.values():
            exposed |= exposition_names(text)
        _, targets, variables = dashboard()
        used = {}
        for title, t in targets:
            for name in metric_names(grafana_expand(t["expr"])):
                used.setdefault(name, "panel %r" % title)
        for v in variables:
            for name in metric_names(grafana_expand(variable_metric(v["query"]["query"])[0])):
                used.setdefault(name, "variable %s" % v["name"])
        for alert, expr in rule_exprs():
            for name in metric_names(expr):
                used.setdefault(name, "alert %s" % alert)
        self.assertIn("cachasided_read_duration_seconds_bucket", used)     # the reader finds names
        missing = ["%s (%s)" % (name, where) for name, where in sorted(used.items())
                   if name not in exposed | SCRAPE_SERIES]
        if missing:
            self.fail("named by the dashboard or the rules, not on a daemon's /metrics:\n  " + "\n  ".join(missing))

    def test_every_panel_query_returns_data(self):
        _, targets, _ = dashboard()
        self.assertGreater(len(targets), 30)
        empty = []
        for title, t in targets:
            expr = grafana_expand(t["expr"])
            data = self.query(expr)
            values = [float(s["value"][1]) for s in data["result"]]
            if not any(math.isfinite(v) for v in values):
                empty.append("%s: %s -> %s" % (title, expr, values))
        if empty:
            self.fail("%d of %d panel queries with no data (or only NaN) after %d s of load:\n  %s"
                      % (len(empty), len(targets), LOAD_SECONDS, "\n  ".join(empty)))

    def test_variables_list_both_daemons_and_every_namespace(self):
        _, _, variables = dashboard()
        want = {"instance": {d["instance"] for d in self.daemons}, "namespace": {"product", "page"}}
        self.assertEqual({v["name"] for v in variables}, set(want))
        for v in variables:
            match, label = variable_metric(v["query"]["query"])
            body = json.loads(get(self.api("label/%s/values" % label, **{"match[]": grafana_expand(match)})))
            self.assertEqual(set(body["data"]), want[v["name"]], v["query"]["query"])

    def test_figures_match_the_load(self):
        """A few panels read against what the load did: a hit ratio between 0
        and 1, misses and errors seen, the stampede saved fetches on both sides."""
        ratio = self.query(grafana_expand(
            'sum(rate(cachasided_reads_total{outcome=~"hit|stale|negative"}[$__rate_interval]))'
            ' / sum(rate(cachasided_reads_total[$__rate_interval]))'))["result"]
        self.assertEqual(len(ratio), 1, "no hit ratio")
        self.assertTrue(0.3 < float(ratio[0]["value"][1]) < 1.0, ratio)
        by = {s["metric"]["outcome"]: float(s["value"][1]) for s in self.query(
            'sum by (outcome) (increase(cachasided_reads_total[1m]))')["result"]}
        for outcome in ("hit", "negative", "miss", "coalesced", "error"):
            self.assertGreater(by.get(outcome, 0), 0, "no %s read counted: %s" % (outcome, by))
        waits = self.query("sum(increase(cachasided_fill_waits_total[1m]))")["result"]
        self.assertGreater(float(waits[0]["value"][1]) if waits else 0, 0, "no fill waited for the other daemon")
        errors = {s["metric"]["result"] for s in self.query(
            'sum by (result) (increase(cachasided_upstream_requests_total{result!~"ok|not_found"}[1m])) > 0')["result"]}
        self.assertIn("status_5xx", errors)

    def alerts(self):
        body = json.loads(get(self.api("alerts")))
        return {(a["labels"]["alertname"], a["labels"].get("instance") or a["labels"].get("namespace"))
                for a in body["data"]["alerts"]}

    def wait_alerts(self, want, timeout=10):
        end = time.time() + timeout
        while not want <= self.alerts() and time.time() < end:
            time.sleep(0.25)
        self.assertLessEqual(want, self.alerts())

    def test_rules_evaluate_and_raise_alerts(self):
        groups = json.loads(get(self.api("rules")))["data"]["groups"]
        rules = [r for g in groups for r in g["rules"]]
        self.assertEqual(sorted(r["name"] for r in rules), sorted(name for name, _ in rule_exprs()))
        for r in rules:
            self.assertEqual((r["health"], r.get("lastError", "")), ("ok", ""), r["name"])
        # The 503s of product:err-1 are a third of product's fetches: pending
        # (it needs 5 minutes to fire); page has none. Nothing is wrong with
        # the daemons yet. (The p99 of hits is left out: on a loaded machine,
        # or under the sanitizers, it may well pass 10 ms.)
        self.wait_alerts({("CachasidedUpstreamErrors", "product")})
        active = self.alerts() - {("CachasidedHitLatencyHigh", d["instance"]) for d in self.daemons}
        self.assertEqual(active, {("CachasidedUpstreamErrors", "product")})
        a, b = self.daemons
        # a: a reload that changes a restart-only key, then one that is refused.
        with open(a["conf"]) as f:
            conf = f.read()
        with open(a["conf"], "w") as f:
            f.write(conf.replace("[redis]\n", "[redis]\ncommand_timeout_ms = 777\n"))
        a["proc"].send_signal(signal.SIGHUP)
        self.wait_alerts({("CachasidedRestartPending", a["instance"])})
        with open(a["conf"], "w") as f:
            f.write(conf.replace("[cache]\n", "[cache]\nno_such_key = 1\n"))
        a["proc"].send_signal(signal.SIGHUP)
        self.wait_alerts({("CachasidedReloadRefused", a["instance"])})
        # Redis gone: both daemons lose it and read around it; b dies.
        self.redis.terminate()
        self.redis.wait(10)
        self.wait_alerts({("CachasidedRedisDown", a["instance"]), ("CachasidedRedisDown", b["instance"]),
                          ("CachasidedDegraded", a["instance"]), ("CachasidedDegraded", b["instance"])})
        b["proc"].kill()
        b["proc"].wait()
        self.wait_alerts({("CachasidedDaemonDown", b["instance"])})
        self.assertNotIn(("CachasidedDaemonDown", a["instance"]), self.alerts())


if __name__ == "__main__":
    unittest.main(verbosity=2)
