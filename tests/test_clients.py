#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-3-Clause
"""Stock client libraries against the daemon, unchanged (docs/protocol.md,
"The one-node cluster" and "Introspection"); run by `make check`.

redis-py, as Debian packages it (python3-redis), the library users run:
its Redis client parses CLIENT LIST, CLIENT INFO, COMMAND and INFO into
Python values, and its RedisCluster client connects through CLUSTER SLOTS,
reads every command's key positions from COMMAND and routes each key by
them. A real redis-server, the example upstream and the daemon run on
loopback and free ports. Skipped (exit 77) when redis-py is not installed.
"""
import os
import shutil
import subprocess
import sys
import tempfile
import time
import unittest

sys.dont_write_bytecode = True     # keep the source tree clean
DEBIAN_PYTHON = "/usr/bin/python3"
try:
    import redis
    from redis.cluster import RedisCluster
except ImportError:
    # python3-redis is installed for Debian's python3; a python3 earlier on
    # PATH (a virtualenv, pyenv) may not see it.
    if os.path.exists(DEBIAN_PYTHON) and os.path.realpath(sys.executable) != os.path.realpath(DEBIAN_PYTHON) \
            and not os.environ.get("CACHASIDED_REEXEC"):
        os.environ["CACHASIDED_REEXEC"] = "1"
        os.execv(DEBIAN_PYTHON, [DEBIAN_PYTHON] + sys.argv)
    print("SKIP: redis-py (python3-redis) is not installed")
    sys.exit(77)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cstest import daemon_ini, free_port, wait_port  # noqa: E402

DAEMON = os.environ.get("CACHASIDED_BIN", "src/cachasided")
UPSTREAM = os.environ.get("CACHASIDED_UPSTREAM_BIN", "tests/cachasided-example-upstream")
REDIS = os.environ.get("REDIS_SERVER") or shutil.which("redis-server") or "redis-server"


class Stack:
    """redis-server, the example upstream and a daemon on free ports; SERVER
    adds keys to the daemon's [server] section ("{port}" in a value is its
    port)."""

    def __init__(self, server=None):
        self.tmp = tempfile.mkdtemp(prefix="cachasided-clients-")
        self.rport, self.uport, self.port = free_port(), free_port(), free_port()
        self.procs, self.files = [], []
        try:
            self.start(server)
        except BaseException:
            self.close()        # what did start stops: nothing outlives the test
            raise

    def start(self, server):
        def log(name):
            self.files.append(open(os.path.join(self.tmp, name), "w"))
            return self.files[-1]
        self.procs.append(subprocess.Popen([REDIS, "--port", str(self.rport), "--bind", "127.0.0.1", "--save", "",
                                            "--appendonly", "no"], stdout=log("redis.log")))
        wait_port(self.rport, self.procs[-1], "redis-server")
        self.procs.append(subprocess.Popen([UPSTREAM, "-p", str(self.uport), "-g", "100", "-q"],
                                           stderr=log("upstream.log")))
        wait_port(self.uport, self.procs[-1], "example upstream")
        server = {k: str(v).replace("{port}", str(self.port)) for k, v in (server or {}).items()}
        conf = daemon_ini(os.path.join(self.tmp, "cachasided.ini"), self.port, self.rport, self.uport,
                          server=dict({"admin_listen": ""}, **server))
        self.log = os.path.join(self.tmp, "daemon.log")
        self.procs.append(subprocess.Popen([DAEMON, "-c", conf], stderr=log("daemon.log")))
        wait_port(self.port, self.procs[-1], "cachasided")
        # Ready once its Redis link answers (TTL stops saying TRYAGAIN).
        r = redis.Redis(port=self.port)
        end = time.time() + 10
        while True:
            try:
                r.ttl("product:ready")
                break
            except redis.exceptions.ResponseError:
                if time.time() > end:
                    raise
                time.sleep(0.05)
        r.close()

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
        if os.environ.get("CACHASIDED_KEEP_TMP"):
            print("kept", self.tmp)
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)


class Clients(unittest.TestCase):
    def setUp(self):
        self.stack = None

    def tearDown(self):
        if self.stack:
            self.stack.close()

    def up(self, server=None):
        self.stack = Stack(server)
        return self.stack

    def test_introspection(self):
        # Before: CLIENT GETNAME answered None after CLIENT SETNAME, CLIENT
        # LIST answered +OK (client_list() raised ValueError), COMMAND COUNT
        # an empty array (TypeError), CLIENT KILL OK and did nothing.
        s = self.up()
        r = redis.Redis(port=s.port, decode_responses=True)
        other = redis.Redis(port=s.port, decode_responses=True)
        self.assertTrue(r.client_setname("svc"))
        self.assertEqual(r.client_getname(), "svc")
        self.assertTrue(other.ping())
        mine, theirs = r.client_id(), other.client_id()

        clients = {int(c["id"]): c for c in r.client_list()}
        # Ours, and at most the start-up probe's, whose close the daemon may
        # not have read yet (it came first: a lower id).
        self.assertTrue({mine, theirs} <= set(clients), clients)
        self.assertTrue(all(i < min(mine, theirs) for i in set(clients) - {mine, theirs}), clients)
        self.assertEqual(clients[mine]["name"], "svc")
        self.assertEqual(clients[theirs]["name"], "")
        self.assertEqual(clients[mine]["laddr"], "127.0.0.1:%d" % s.port)
        self.assertEqual(clients[theirs]["cmd"], "client")
        info = r.client_info()
        self.assertEqual(int(info["id"]), mine)
        self.assertEqual(info["name"], "svc")
        self.assertEqual(info["db"], 0)

        self.assertEqual(r.client_kill_filter(_id=theirs), 1)
        self.assertEqual({int(c["id"]) for c in r.client_list()}, {mine})

        commands = r.command()
        self.assertEqual(r.command_count(), len(commands))
        self.assertEqual((commands["hgetall"]["arity"], commands["hgetall"]["first_key_pos"],
                          commands["hgetall"]["last_key_pos"], commands["hgetall"]["step_count"]), (2, 1, 1, 1))
        self.assertEqual(commands["mget"]["last_key_pos"], -1)
        self.assertIn("readonly", commands["hget"]["flags"])
        self.assertEqual(r.command_getkeys("MGET", "a", "b"), ["a", "b"])

        self.assertEqual(r.info()["redis_version"], "7.2.0")
        self.assertEqual(r.info("server")["redis_mode"], "cluster")
        self.assertEqual(r.info("cluster"), {"cluster_enabled": 1})
        self.assertEqual(r.info("clients")["connected_clients"], 1)
        self.assertEqual(r.hget("product:p-001", "id"), "p-001")
        self.assertEqual(r.info("stats")["keyspace_misses"], 1)

    def test_redis_cluster(self):
        # Before: RedisCluster raised at construction (CLUSTER SLOTS unknown).
        s = self.up()
        rc = RedisCluster(host="127.0.0.1", port=s.port, decode_responses=True)
        nodes = rc.get_nodes()
        self.assertEqual([(n.host, n.port) for n in nodes], [("127.0.0.1", s.port)])
        self.assertEqual(rc.hgetall("product:p-001")["id"], "p-001")
        self.assertEqual(rc.hget("product:p-002", "id"), "p-002")
        self.assertIn("p-003", rc.get("page:p-003"))
        # Keys of different slots, all served by the one node.
        keys = ["page:p-%03d" % i for i in range(10, 20)]
        self.assertEqual(len({rc.keyslot(k) for k in keys}) > 1, True)
        self.assertTrue(all("p-0" in v for v in rc.mget_nonatomic(keys)))
        pipe = rc.pipeline()
        for i in range(20, 25):
            pipe.hget("product:p-%03d" % i, "id")
        self.assertEqual(pipe.execute(), ["p-%03d" % i for i in range(20, 25)])
        self.assertGreater(rc.ttl("product:p-001"), 0)
        self.assertEqual(rc.delete("product:p-001"), 1)
        self.assertEqual(rc.ttl("product:p-001"), -2)
        # A command of the daemon's own, routed by the key position COMMAND gives.
        self.assertGreaterEqual(rc.execute_command("INVALIDATE", "product:*"), 1)
        self.assertEqual(rc.cluster_keyslot("123456789"), 12739)
        self.assertEqual(rc.cluster_info()["cluster_state"], "ok")
        rc.close()

    def test_redis_cluster_announce(self):
        # cluster_announce is the address the client is sent to: it seeds
        # with 127.0.0.1 and then reads through 127.0.0.2.
        s = self.up({"listen": "0.0.0.0:{port}", "cluster_announce": "127.0.0.2:{port}"})
        rc = RedisCluster(host="127.0.0.1", port=s.port, decode_responses=True)
        self.assertEqual([(n.host, n.port) for n in rc.get_nodes()], [("127.0.0.2", s.port)])
        self.assertEqual(rc.hget("product:p-004", "id"), "p-004")
        r = redis.Redis(port=s.port, decode_responses=True)
        self.assertIn("127.0.0.2:%d" % s.port, [c["laddr"] for c in r.client_list()])
        r.close()
        rc.close()

    def test_redis_cluster_wildcard_listen(self):
        # listen 0.0.0.0: each client is told the address it connected to.
        s = self.up({"listen": "0.0.0.0:{port}"})
        rc = RedisCluster(host="127.0.0.1", port=s.port, decode_responses=True)
        self.assertEqual([(n.host, n.port) for n in rc.get_nodes()], [("127.0.0.1", s.port)])
        self.assertEqual(rc.hget("product:p-005", "id"), "p-005")
        rc.close()


if __name__ == "__main__":
    unittest.main(verbosity=2)
