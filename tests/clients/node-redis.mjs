/* SPDX-License-Identifier: BSD-3-Clause */
// node-redis.mjs - node-redis 4 or 5 (the argument: 4 or 5) against the
// daemon: reads and writes, refused commands, pipelines (concurrent
// commands and execAsPipeline), multi().exec(), a named client in CLIENT
// LIST, createCluster with the daemon as its only root node, and with 5
// also RESP: 3. Both majors are the package "redis", installed under the
// aliases redis4 and redis5 (package.json). Keys: products p-031 to p-039
// (4) or p-041 to p-049 (5).
import { assert, check, clientLines, done, page, port, product, rejects } from "./tap.mjs";

const major = Number(process.argv[2]);
if (major !== 4 && major !== 5) {
  console.error("usage: node node-redis.mjs 4|5");
  process.exit(2);
}
const { createClient, createCluster } = await import(`redis${major}`);
const base = major === 4 ? 30 : 40;
const key = (n) => `product:p-0${base + n}`;
const pkey = (n) => `page:p-0${base + n}`;
const url = `redis://127.0.0.1:${port}`;

async function connect(options = {}) {
  const client = createClient({ url, ...options, socket: { reconnectStrategy: false } });
  client.on("error", () => {});
  await client.connect();
  return client;
}

const client = await connect();

await check("reads: hGetAll, hGet, hmGet, get, mGet, ttl", async () => {
  assert.deepEqual({ ...await client.hGetAll(key(1)) }, product(base + 1));
  assert.equal(await client.hGet(key(1), "name"), `Product ${base + 1}`);
  assert.deepEqual(await client.hmGet(key(1), ["price", "nosuch"]), [`${base + 1}.99`, null]);
  assert.equal(await client.get(pkey(2)), page(base + 2));
  assert.deepEqual(await client.mGet([pkey(2), pkey(3), "page:nosuch"]), [page(base + 2), page(base + 3), null]);
  const ttl = await client.ttl(key(1));
  assert.ok(ttl > 0 && ttl <= 3600, `ttl ${ttl}`);
});

await check("a record the upstream does not have", async () => {
  assert.deepEqual({ ...await client.hGetAll("product:nosuch") }, {});
  assert.equal(await client.hGet("product:nosuch", "name"), null);
});

await check("writes: hSet updates the cached copy, del and INVALIDATE drop it", async () => {
  await client.hGetAll(key(4));
  assert.equal(await client.hSet(key(4), "stock", "5"), 1);
  assert.equal(await client.hGet(key(4), "stock"), "5");
  assert.equal(await client.del(key(4)), 1);
  assert.equal(await client.hGet(key(4), "stock"), product(base + 4).stock);
  assert.equal(await client.sendCommand(["INVALIDATE", key(4)]), 1);
});

await check("SET and EXPIRE are refused", async () => {
  await rejects(() => client.set(key(1), "x"), /unknown command/i);
  await rejects(() => client.expire(key(1), 10), /unknown command/i);
});

await check("pipelines: concurrent commands, multi().execAsPipeline()", async () => {
  const replies = await Promise.all([client.hGet(key(5), "name"), client.get(pkey(5)), client.ttl(key(5))]);
  assert.deepEqual(replies.slice(0, 2), [`Product ${base + 5}`, page(base + 5)]);
  assert.ok(replies[2] > 0);
  assert.deepEqual(await client.multi().hGet(key(5), "price").hGet(key(6), "name").execAsPipeline(),
    [`${base + 5}.99`, `Product ${base + 6}`]);
});

await check("multi().exec(): replies in order, a write after a read of the same key", async () => {
  const replies = await client.multi()
    .hGet(key(7), "name").hSet(key(7), "name", "Renamed").hGet(key(7), "name")
    .exec();
  assert.deepEqual(replies, [`Product ${base + 7}`, 1, "Renamed"]);
  assert.equal(await client.del(key(7)), 1);
});

await check("multi().exec() with a refused command: EXECABORT, nothing runs", async () => {
  // node-redis 4 rejects with EXEC's EXECABORT, 5 with the SET's own
  // error, the first of the replies it awaits together (as redis-py does).
  await client.hGetAll(key(8));
  await rejects(() => client.multi().hSet(key(8), "name", "Lost").set(key(8), "x").exec(),
    major === 4 ? /EXECABORT/ : /unknown command 'SET'/i);
  assert.equal(await client.hGet(key(8), "name"), `Product ${base + 8}`);
});

await check("name option: CLIENT GETNAME, ID and LIST", async () => {
  const name = `app-node-redis${major}`;
  const named = await connect({ name });
  try {
    assert.equal(await named.clientGetName(), name);
    const id = await named.clientId();
    assert.equal(typeof id, "number");
    const mine = clientLines(await named.sendCommand(["CLIENT", "LIST"])).filter((c) => c.id === String(id));
    assert.equal(mine.length, 1, "CLIENT LIST has no line with the connection's CLIENT ID");
    assert.equal(mine[0].name, name);
    assert.equal(mine[0]["lib-name"], "node-redis");       // CLIENT SETINFO, sent at connect
    assert.match(mine[0]["lib-ver"], /^\d+\.\d+\.\d+/);
    assert.equal(mine[0].resp, "2");
    // clientList() parses the same lines itself.
    assert.ok((await named.clientList()).some((c) => c.id === id && c.name === name));
  } finally {
    await named.quit();
  }
});

if (major >= 5) {
  await check("RESP: 3 (HELLO 3): reads, a missing record, a missing field", async () => {
    const r3 = await connect({ RESP: 3 });
    try {
      assert.deepEqual({ ...await r3.hGetAll(key(9)) }, product(base + 9));
      assert.equal(await r3.hGet(key(9), "nosuch"), null);
      assert.deepEqual({ ...await r3.hGetAll("product:nosuch") }, {});
      assert.deepEqual(await r3.mGet([pkey(9), "page:nosuch"]), [page(base + 9), null]);
    } finally {
      await r3.quit();
    }
  });

  await check("RESP: 3: CLIENT INFO says resp=3", async () => {
    const r3 = await connect({ RESP: 3 });
    try {
      assert.equal(clientLines(String(await r3.sendCommand(["CLIENT", "INFO"])))[0].resp, "3");
    } finally {
      await r3.quit();
    }
  });

  await check("RESP: 3: multi().exec()", async () => {
    const r3 = await connect({ RESP: 3 });
    try {
      assert.deepEqual(await r3.multi().hGet(key(9), "name").hGet(key(9), "nosuch").exec(),
        [`Product ${base + 9}`, null]);
    } finally {
      await r3.quit();
    }
  });
}

async function cluster(resp) {
  const c = createCluster({
    rootNodes: [{ url }],
    defaults: { socket: { reconnectStrategy: false } },
    ...(resp === 3 ? { RESP: 3 } : {}),
  });
  c.on("error", () => {});
  await c.connect();
  return c;
}

for (const resp of major >= 5 ? [2, 3] : [2]) {
  await check(`createCluster with the daemon as its only root node (RESP${resp}): reads, writes`, async () => {
    const c = await cluster(resp);
    try {
      assert.deepEqual({ ...await c.hGetAll(key(1)) }, product(base + 1));
      assert.equal(await c.get(pkey(2)), page(base + 2));
      assert.deepEqual(c.masters.map((m) => `${m.host}:${m.port}`), [`127.0.0.1:${port}`]);
      assert.equal(await c.del(key(1)), 1);
      await c.hGetAll(key(1));
      assert.equal(await c.sendCommand(key(1), false, ["INVALIDATE", key(1)]), 1);
    } finally {
      await c.disconnect();
    }
  });

  await check(`createCluster (RESP${resp}): multi().exec()`, async () => {
    const c = await cluster(resp);
    try {
      assert.deepEqual(await c.multi().hGet(key(3), "name").exec(), [`Product ${base + 3}`]);
    } finally {
      await c.disconnect();
    }
  });
}

await client.quit();
done();
