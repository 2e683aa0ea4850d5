#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-3-Clause
"""The client libraries applications use, against the daemon: run by `make check`.

A real redis-server, the example upstream (tests/catalogue.json and
generated products up to p-100) and one daemon on loopback and free ports,
driven by:

- redis-py (Debian's python3-redis): plain commands, pipeline(transaction=
  False), pipeline() (MULTI/EXEC), CLIENT SETNAME/GETNAME/ID/LIST/INFO/KILL,
  INFO, and redis.cluster.RedisCluster with the daemon as its only seed;
  Redis(protocol=3) is skipped, 4.3.4 has no RESP3;
- ioredis 6, node-redis 4 and node-redis 5, pinned by
  tests/clients/package-lock.json and installed by `npm ci` into a cache
  directory named by the lockfile's hash (so a rerun installs nothing);
  tests/clients/*.mjs, one script per library, print one line per check;
- every snippet of docs/clients.md, which must print what the page says.

redis-cli -3 is tests/test_resp3.c's. Each library has its own products
(redis-py p-011 to p-019, ioredis p-021..., node-redis 4 p-031..., 5
p-041...), the snippets p-001 to p-003, so no test sees another's writes.

The first run needs the npm registry (CI has it): when `npm ci` fails the
test fails, it never skips. CACHASIDED_NODE_CACHE names another cache
directory (default ~/.cache/cachasided, or $XDG_CACHE_HOME/cachasided).
"""
import glob
import hashlib
import inspect
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import unittest

sys.dont_write_bytecode = True     # keep the source tree clean
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from cstest import Conn, daemon_ini, free_port, wait_port  # noqa: E402

try:
    import redis
    from redis.cluster import RedisCluster
except ImportError:
    # A python3 of its own first in PATH (pyenv) lacks Debian's package.
    if sys.executable != "/usr/bin/python3" and os.path.exists("/usr/bin/python3"):
        os.execv("/usr/bin/python3", ["/usr/bin/python3"] + sys.argv)
    raise SystemExit("redis-py is not installed: Debian's python3-redis (scripts/deps.sh installs it)")

DAEMON = os.environ.get("CACHASIDED_BIN", "src/cachasided")
UPSTREAM = os.environ.get("CACHASIDED_UPSTREAM_BIN", "tests/cachasided-example-upstream")
REDIS = os.environ.get("REDIS_SERVER") or shutil.which("redis-server") or "redis-server"
SRCDIR = os.environ.get("CACHASIDED_SRCDIR") or os.path.dirname(HERE)
CLIENTS = os.path.join(SRCDIR, "tests", "clients")
DOCS = os.path.join(SRCDIR, "docs", "clients.md")


def product(n):
    """Generated product N as HGETALL answers it (the example upstream's -g)."""
    pid = "p-%03d" % n
    return {"id": pid, "name": "Product %d" % n, "price": "%d.99" % n, "stock": str(n * 7 % 100),
            "tags": '["demo"]'}


def page(n):
    """The same product as the raw namespace's GET answers it: the body."""
    p = product(n)
    return '{"id":"%s","name":"%s","price":"%s","stock":%s,"tags":["demo"]}' % (
        p["id"], p["name"], p["price"], p["stock"])


class Stack:
    """redis-server + the example upstream + one daemon, for the whole file."""

    def __init__(self):
        self.tmp = tempfile.mkdtemp(prefix="cachasided-clients-")
        self.rport, self.uport, self.port = free_port(), free_port(), free_port()
        self.procs = []
        self.log = os.path.join(self.tmp, "daemon.log")
        try:
            self.start_all()
        except BaseException:       # wait_port's SystemExit too: nothing is left running
            if os.path.exists(self.log):
                with open(self.log) as f:
                    sys.stderr.write(f.read()[-3000:])
            self.close()
            raise

    def start_all(self):
        self.start(["redis-server", REDIS, "--port", str(self.rport), "--bind", "127.0.0.1", "--save", "",
                    "--appendonly", "no", "--logfile", os.path.join(self.tmp, "redis.log")], self.rport)
        self.start(["example upstream", UPSTREAM, "-p", str(self.uport), "-q", "-g", "100",
                    "-f", os.path.join(SRCDIR, "tests", "catalogue.json")], self.uport)
        conf = daemon_ini(os.path.join(self.tmp, "cachasided.ini"), self.port, self.rport, self.uport,
                          server={"admin_listen": ""})      # off: not the default port, maybe taken
        self.start(["cachasided", DAEMON, "-c", conf], self.port, self.log)
        # Ready once Redis is connected: TTL answers -TRYAGAIN until then.
        c = Conn(self.port)
        end = time.time() + 10
        while not isinstance(c.cmd("TTL", "product:none"), int):
            if time.time() > end:
                raise SystemExit("the daemon did not connect to Redis")
            time.sleep(0.05)
        c.close()

    def start(self, what_and_argv, port, log=None):
        what, argv = what_and_argv[0], what_and_argv[1:]
        err = open(log, "w") if log else None
        p = subprocess.Popen(argv, stderr=err)
        if err:
            err.close()
        self.procs.append(p)
        wait_port(port, p, what)

    def close(self):
        for p in self.procs:
            if p.poll() is None:
                p.kill()
            p.wait()
        if os.environ.get("CACHASIDED_KEEP_TMP"):
            print("kept", self.tmp)
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)


STACK = None


def setUpModule():
    global STACK
    STACK = Stack()


def tearDownModule():
    if STACK:
        STACK.close()


def client(**kw):
    return redis.Redis(host="127.0.0.1", port=STACK.port, decode_responses=True, socket_timeout=20, **kw)


class RedisPy(unittest.TestCase):
    """redis-py's plain commands, as an application calls them."""

    def setUp(self):
        self.r = client()

    def tearDown(self):
        self.r.close()

    def test_reads(self):
        r = self.r
        self.assertEqual(r.hgetall("product:p-011"), product(11))
        self.assertEqual(r.hget("product:p-011", "name"), "Product 11")
        self.assertEqual(r.hmget("product:p-011", ["price", "nosuch"]), ["11.99", None])
        self.assertEqual(r.get("page:p-012"), page(12))
        self.assertEqual(r.mget(["page:p-012", "page:p-013", "page:nosuch"]), [page(12), page(13), None])
        self.assertTrue(0 < r.ttl("product:p-011") <= 3600)
        self.assertTrue(0 < r.pttl("product:p-011") <= 3600 * 1000)

    def test_a_record_the_upstream_does_not_have(self):
        self.assertEqual(self.r.hgetall("product:nosuch"), {})
        self.assertIsNone(self.r.hget("product:nosuch", "name"))
        self.assertIsNone(self.r.get("page:nosuch"))

    def test_writes(self):
        r = self.r
        r.hgetall("product:p-014")
        self.assertEqual(r.hset("product:p-014", "stock", "5"), 1)
        self.assertEqual(r.hget("product:p-014", "stock"), "5")
        self.assertEqual(r.delete("product:p-014"), 1)
        self.assertEqual(r.hget("product:p-014", "stock"), product(14)["stock"])
        self.assertEqual(r.execute_command("INVALIDATE", "product:p-01[4]"), 1)
        self.assertEqual(r.hset("product:p-019", "stock", "5"), 0)     # not cached: nothing written

    def test_refused(self):
        for args in (("SET", "product:p-011", "x"), ("EXPIRE", "product:p-011", "10")):
            with self.assertRaisesRegex(redis.ResponseError, "unknown command"):
                self.r.execute_command(*args)
        with self.assertRaisesRegex(redis.ResponseError, "unknown namespace 'nosuch'"):
            self.r.hgetall("nosuch:1")

    def test_pipeline(self):
        pipe = self.r.pipeline(transaction=False)
        pipe.hget("product:p-015", "name").hgetall("product:p-016").get("page:p-015").ttl("product:p-015")
        replies = pipe.execute()
        self.assertEqual(replies[:3], ["Product 15", product(16), page(15)])
        self.assertGreater(replies[3], 0)

    def test_transaction(self):
        pipe = self.r.pipeline()          # transaction=True: MULTI ... EXEC
        pipe.hget("product:p-017", "name").hset("product:p-017", "name", "Renamed").hget("product:p-017", "name")
        self.assertEqual(pipe.execute(), ["Product 17", 1, "Renamed"])
        self.assertEqual(self.r.delete("product:p-017"), 1)

    def test_transaction_with_a_refused_command(self):
        # The SET is refused as it is queued, so EXEC runs nothing
        # (EXECABORT); redis-py raises the SET's own error.
        self.r.hgetall("product:p-018")
        pipe = self.r.pipeline()
        pipe.hset("product:p-018", "name", "Lost").set("product:p-018", "x")
        with self.assertRaisesRegex(redis.ResponseError, "unknown command"):
            pipe.execute()
        self.assertEqual(self.r.hget("product:p-018", "name"), "Product 18")

    def test_watch_is_refused(self):
        pipe = self.r.pipeline()
        with self.assertRaises(redis.ResponseError):
            pipe.watch("product:p-018")
        pipe.reset()


class RedisPyClient(unittest.TestCase):
    """CLIENT as redis-py calls it: names, ids, the list, kill; INFO."""

    def setUp(self):
        self.r = client()

    def tearDown(self):
        self.r.close()

    def test_name(self):
        self.assertIsNone(self.r.client_getname())
        self.assertTrue(self.r.client_setname("app-redis-py"))
        self.assertEqual(self.r.client_getname(), "app-redis-py")
        named = client(client_name="app-redis-py-2")   # redis-py sends CLIENT SETNAME on connect
        try:
            self.assertEqual(named.client_getname(), "app-redis-py-2")
        finally:
            named.close()

    def test_list_and_id(self):
        self.r.client_setname("app-list")
        other = Conn(STACK.port)
        try:
            self.assertEqual(other.cmd("CLIENT", "SETNAME", "other"), "+OK")
            cid = self.r.client_id()
            self.assertIsInstance(cid, int)
            clients = self.r.client_list()
            mine = [c for c in clients if c["id"] == str(cid)]
            self.assertEqual(len(mine), 1, clients)
            self.assertEqual(mine[0]["name"], "app-list")
            self.assertRegex(mine[0]["addr"], r"^127\.0\.0\.1:\d+$")
            self.assertIn("other", [c["name"] for c in clients])
            info = self.r.client_info()
            self.assertEqual((str(info["id"]), info["name"]), (str(cid), "app-list"))
            self.assertIn("app-list", [c["name"] for c in self.r.client_list(_type="normal")])
        finally:
            other.close()

    def test_info(self):
        # Libraries and their users read the server's version from INFO.
        self.assertIn("redis_version", self.r.info("server"))
        self.assertIsInstance(self.r.info(), dict)

    def test_kill(self):
        victim = Conn(STACK.port)
        try:
            vid = victim.cmd("CLIENT", "ID")
            self.assertIsInstance(vid, int)
            self.assertEqual(self.r.client_kill_filter(_id=vid), 1)
            self.assertTrue(victim.closed_after(5))
            self.assertNotIn(str(vid), [c["id"] for c in self.r.client_list()])
        finally:
            victim.close()


class RedisPyCluster(unittest.TestCase):
    """redis.cluster.RedisCluster with the daemon as its only seed: it reads
    CLUSTER SLOTS and COMMAND, then sends every key to the node owning its
    slot, which is the daemon for all of them."""

    def setUp(self):
        self.rc = RedisCluster(host="127.0.0.1", port=STACK.port, decode_responses=True, socket_timeout=20)

    def tearDown(self):
        self.rc.close()

    def test_reads_and_writes(self):
        rc = self.rc
        self.assertEqual([n.name for n in rc.get_nodes()], ["127.0.0.1:%d" % STACK.port])
        self.assertEqual(rc.hgetall("product:p-011"), product(11))
        self.assertEqual(rc.hget("product:p-012", "name"), "Product 12")
        self.assertEqual(rc.get("page:p-013"), page(13))
        self.assertEqual(rc.mget_nonatomic(["page:p-011", "page:p-012"]), [page(11), page(12)])
        self.assertGreater(rc.ttl("product:p-011"), 0)
        self.assertEqual(rc.cluster_keyslot("product:p-011"), rc.keyslot("product:p-011"))
        rc.hgetall("product:p-016")
        self.assertEqual(rc.delete("product:p-016"), 1)
        rc.hgetall("product:p-016")
        self.assertEqual(rc.execute_command("INVALIDATE", "product:p-016"), 1)

    def test_pipeline(self):
        pipe = self.rc.pipeline()      # keys of three slots: grouped by node, one node
        pipe.hget("product:p-011", "name").hget("product:p-012", "name").hget("product:p-013", "name")
        self.assertEqual(pipe.execute(), ["Product 11", "Product 12", "Product 13"])


class RedisPyResp3(unittest.TestCase):
    def test_protocol_3(self):
        # Redis(protocol=3) came with redis-py 5.0; Debian 12's 4.3.4 speaks
        # RESP2 only. RESP3 is covered by the node clients below and by
        # tests/test_resp3.c (redis-cli -3).
        if "protocol" not in inspect.signature(redis.Redis.__init__).parameters:
            self.skipTest("redis-py %s has no protocol=3" % redis.__version__)
        r3 = client(protocol=3)
        try:
            self.assertEqual(r3.hgetall("product:p-019"), product(19))
            self.assertIsNone(r3.hget("product:p-019", "nosuch"))
        finally:
            r3.close()


# ---- the node clients ------------------------------------------------------

def node_modules():
    """The node_modules of tests/clients/package-lock.json, installed by
    `npm ci` once per lockfile: <cache>/clients-<hash>/node_modules."""
    npm = shutil.which("npm")
    if not shutil.which("node") or not npm:
        raise AssertionError("node and npm are needed (scripts/deps.sh installs Debian's nodejs and npm)")
    h = hashlib.sha256()
    for name in ("package.json", "package-lock.json"):
        with open(os.path.join(CLIENTS, name), "rb") as f:
            h.update(f.read())
    cache = os.environ.get("CACHASIDED_NODE_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "cachasided")
    dest = os.path.join(cache, "clients-" + h.hexdigest()[:16])
    if os.path.exists(os.path.join(dest, "installed")):
        return os.path.join(dest, "node_modules")
    os.makedirs(cache, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=os.path.basename(dest) + ".", dir=cache)
    try:
        for name in ("package.json", "package-lock.json"):
            shutil.copy(os.path.join(CLIENTS, name), tmp)
        t0 = time.time()
        p = subprocess.run([npm, "ci", "--ignore-scripts", "--no-audit", "--no-fund"], cwd=tmp,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=600)
        out = p.stdout.decode(errors="replace")
        if p.returncode != 0:
            raise AssertionError("npm ci failed (status %d): the node clients come from the npm registry, "
                                 "which the first run must reach:\n%s" % (p.returncode, out[-3000:]))
        print("npm ci: %.1f s, %s" % (time.time() - t0, out.strip().splitlines()[-1:]), flush=True)
        open(os.path.join(tmp, "installed"), "w").close()
        try:
            os.rename(tmp, dest)
        except OSError:     # another run installed it meanwhile
            if not os.path.exists(os.path.join(dest, "installed")):
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return os.path.join(dest, "node_modules")


NPM_FAILED = []     # npm ci's error, so a failed install is tried once a run


def node_dir():
    """A directory with the client scripts and node_modules, for `node` to run them in."""
    d = os.path.join(STACK.tmp, "node")
    if not os.path.exists(d):
        if NPM_FAILED:
            raise AssertionError("npm ci failed, see above")
        try:
            modules = node_modules()
        except AssertionError as e:
            NPM_FAILED.append(e)
            raise
        os.mkdir(d)
        os.symlink(modules, os.path.join(d, "node_modules"))
        for f in glob.glob(os.path.join(CLIENTS, "*.mjs")):
            shutil.copy(f, d)
    return d


def run_node(d, script, *args, timeout=180):
    """Runs node SCRIPT in D with the daemon's port; (status, output)."""
    env = dict(os.environ, CACHASIDED_PORT=str(STACK.port))
    p = subprocess.run(["node", script] + list(args), cwd=d, env=env, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=timeout)
    return p.returncode, p.stdout.decode(errors="replace")


class NodeClients(unittest.TestCase):
    """ioredis 6, node-redis 4 and 5: tests/clients/*.mjs."""

    @classmethod
    def setUpClass(cls):
        cls.dir = node_dir()

    def script(self, script, *args):
        status, out = run_node(self.dir, script, *args)
        sys.stdout.write("\n".join("  " + line for line in out.splitlines()) + "\n")
        sys.stdout.flush()
        for line in out.splitlines():
            m = re.match(r"not ok \d+ - (.*)", line)
            if m:
                with self.subTest(check=m.group(1)):
                    self.fail(m.group(1))
        if status != 0 or not re.search(r"(?m)^# \d+ passed, 0 failed$", out):
            self.fail("%s exited %d, its last lines:\n%s" % (script, status, "\n".join(out.splitlines()[-6:])))

    def test_ioredis_6(self):
        self.script("ioredis.mjs")

    def test_node_redis_4(self):
        self.script("node-redis.mjs", "4")

    def test_node_redis_5(self):
        self.script("node-redis.mjs", "5")


# ---- docs/clients.md ---------------------------------------------------------

def snippets():
    """docs/clients.md's runnable blocks (python, js, bash), each with its
    heading and the ```text block right after it: [[heading, lang, code,
    expected output or None]]."""
    with open(DOCS) as f:
        text = f.read()
    out, heading, last = [], "", None
    for m in re.finditer(r"^#+ ([^\n]*)$|^```(\w*)\n(.*?)^```$", text, re.M | re.S):
        if m.group(1) is not None:
            heading = m.group(1)
        elif m.group(2) in ("python", "js", "bash"):
            last = [heading, m.group(2), m.group(3), None]
            out.append(last)
        else:
            if m.group(2) == "text" and last is not None:
                last[3] = m.group(3)
            last = None
    return out


class DocSnippets(unittest.TestCase):
    """Each snippet of docs/clients.md runs against the daemon (7379 there is
    the test daemon's port here) and prints what the page says it prints."""

    def test_snippets(self):
        found = snippets()
        self.assertEqual({s[1] for s in found}, {"python", "js", "bash"}, "docs/clients.md lost its snippets")
        port = str(STACK.port)
        for heading, lang, code, expected in found:
            self.assertIn("7379", code, heading)
            self.assertIsNotNone(expected, "%s: no ```text block after the snippet" % heading)
            code, expected = code.replace("7379", port), expected.replace("7379", port)
            runs = []
            if lang == "python":
                runs.append(("python", [sys.executable, "-c", code], None))
            elif lang == "bash":
                runs.append(("bash", ["bash", "-c", code], None))
            elif re.search(r'from "redis";', code):
                d = node_dir()
                for major in ("4", "5"):
                    runs.append(("node-redis " + major, ["node", "--input-type=module", "-e",
                                                         code.replace('from "redis";', 'from "redis%s";' % major)], d))
            else:
                runs.append(("node", ["node", "--input-type=module", "-e", code], node_dir()))
            for what, argv, cwd in runs:
                with self.subTest(snippet=heading, run=what):
                    p = subprocess.run(argv, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=20)
                    got = p.stdout.decode(errors="replace").replace("\r\n", "\n")
                    self.assertEqual(p.returncode, 0, p.stderr.decode(errors="replace")[-2000:])
                    self.assertEqual(got, expected)


if __name__ == "__main__":
    unittest.main(verbosity=2)
