/* SPDX-License-Identifier: BSD-3-Clause */
// ioredis.mjs - ioredis 6 against the daemon: reads and writes, refused
// commands, pipelines, MULTI/EXEC, a named connection in CLIENT LIST, and
// Redis.Cluster with the daemon as its only seed. ioredis 6 speaks RESP3
// by default (HELLO 3 at connect); protocol: 2 is checked too. Keys:
// products p-021 to p-029.
import Redis from "ioredis";
import { assert, check, clientLines, done, page, port, product, rejects } from "./tap.mjs";

const opts = { host: "127.0.0.1", port, maxRetriesPerRequest: 1, retryStrategy: () => null };
const redis = new Redis(opts);
redis.on("error", () => {});

await check("reads: hgetall, hget, hmget, get, mget, ttl", async () => {
  assert.deepEqual(await redis.hgetall("product:p-021"), product(21));
  assert.equal(await redis.hget("product:p-021", "name"), "Product 21");
  assert.deepEqual(await redis.hmget("product:p-021", "price", "nosuch"), ["21.99", null]);
  assert.equal(await redis.get("page:p-022"), page(22));
  assert.deepEqual(await redis.mget("page:p-022", "page:p-023", "page:nosuch"), [page(22), page(23), null]);
  const ttl = await redis.ttl("product:p-021");
  assert.ok(ttl > 0 && ttl <= 3600, `ttl ${ttl}`);
});

await check("a record the upstream does not have", async () => {
  assert.deepEqual(await redis.hgetall("product:nosuch"), {});
  assert.equal(await redis.hget("product:nosuch", "name"), null);
});

await check("writes: hset updates the cached copy, del and INVALIDATE drop it", async () => {
  await redis.hgetall("product:p-024");
  assert.equal(await redis.hset("product:p-024", "stock", "5"), 1);
  assert.equal(await redis.hget("product:p-024", "stock"), "5");
  assert.equal(await redis.del("product:p-024"), 1);
  assert.equal(await redis.hget("product:p-024", "stock"), product(24).stock);
  assert.equal(await redis.call("INVALIDATE", "product:p-02[4]"), 1);
});

await check("SET and EXPIRE are refused", async () => {
  await rejects(() => redis.set("product:p-021", "x"), /unknown command/i);
  await rejects(() => redis.expire("product:p-021", 10), /unknown command/i);
});

await check("pipeline().exec()", async () => {
  const replies = await redis.pipeline()
    .hget("product:p-025", "name").hgetall("product:p-026").get("page:p-025").ttl("product:p-025")
    .exec();
  assert.equal(replies.length, 4);
  for (const [err] of replies)
    assert.equal(err, null);
  assert.deepEqual(replies.slice(0, 3).map((r) => r[1]), ["Product 25", product(26), page(25)]);
  assert.ok(replies[3][1] > 0);
});

await check("multi().exec(): replies in order, a write after a read of the same key", async () => {
  const replies = await redis.multi()
    .hget("product:p-027", "name").hset("product:p-027", "name", "Renamed").hget("product:p-027", "name")
    .exec();
  assert.deepEqual(replies, [[null, "Product 27"], [null, 1], [null, "Renamed"]]);
  assert.equal(await redis.del("product:p-027"), 1);
});

await check("multi().exec() with a refused command: EXECABORT, nothing runs", async () => {
  await redis.hgetall("product:p-028");
  await rejects(() => redis.multi().hset("product:p-028", "name", "Lost").set("product:p-028", "x").exec(),
    /EXECABORT/);
  assert.equal(await redis.hget("product:p-028", "name"), "Product 28");
});

await check("connectionName: CLIENT GETNAME, ID and LIST", async () => {
  const named = new Redis({ ...opts, connectionName: "app-ioredis" });
  try {
    assert.equal(await named.client("GETNAME"), "app-ioredis");
    const id = await named.client("ID");
    assert.equal(typeof id, "number");
    const mine = clientLines(await named.client("LIST")).filter((c) => c.id === String(id));
    assert.equal(mine.length, 1, "CLIENT LIST has no line with the connection's CLIENT ID");
    assert.equal(mine[0].name, "app-ioredis");
    assert.equal(mine[0]["lib-name"], "ioredis");          // CLIENT SETINFO, sent at connect
    assert.equal(mine[0]["lib-ver"], "6.1.0");
    assert.equal(mine[0].resp, "3");                       // ioredis 6's default
  } finally {
    named.disconnect();
  }
});

await check("protocol: 2 (no HELLO 3): reads, a missing record, a missing field", async () => {
  const r2 = new Redis({ ...opts, protocol: 2 });
  try {
    assert.deepEqual(await r2.hgetall("product:p-029"), product(29));
    assert.equal(await r2.hget("product:p-029", "nosuch"), null);
    assert.deepEqual(await r2.hgetall("product:nosuch"), {});
    assert.deepEqual(await r2.mget("page:p-029", "page:nosuch"), [page(29), null]);
  } finally {
    r2.disconnect();
  }
});

await check("CLIENT INFO: resp=3 by default, resp=2 with protocol: 2", async () => {
  const r2 = new Redis({ ...opts, protocol: 2 });
  try {
    assert.equal(clientLines(String(await redis.client("INFO")))[0].resp, "3");
    assert.equal(clientLines(await r2.client("INFO"))[0].resp, "2");
  } finally {
    r2.disconnect();
  }
});

await check("protocol: 2: pipeline().exec(), multi().exec()", async () => {
  const r2 = new Redis({ ...opts, protocol: 2 });
  try {
    assert.deepEqual(await r2.pipeline().hget("product:p-029", "price").hget("product:p-029", "nosuch").exec(),
      [[null, "29.99"], [null, null]]);
    assert.deepEqual(await r2.multi().hget("product:p-029", "price").hget("product:p-029", "nosuch").exec(),
      [[null, "29.99"], [null, null]]);
  } finally {
    r2.disconnect();
  }
});

function cluster() {
  const c = new Redis.Cluster([{ host: "127.0.0.1", port }],
    { clusterRetryStrategy: () => null, redisOptions: { maxRetriesPerRequest: 1 } });
  c.on("error", () => {});
  return c;
}

await check("Redis.Cluster with the daemon as its only seed: reads, a pipeline, writes", async () => {
  const c = cluster();
  try {
    assert.deepEqual(await c.hgetall("product:p-021"), product(21));
    assert.equal(await c.get("page:p-022"), page(22));
    const nodes = c.nodes("master");
    assert.deepEqual(nodes.map((n) => `${n.options.host}:${n.options.port}`), [`127.0.0.1:${port}`]);
    // Keys of many slots in one pipeline: one node owns them all.
    const replies = await c.pipeline()
      .hget("product:p-023", "name").hget("product:p-024", "name").hget("product:p-025", "name").exec();
    assert.deepEqual(replies, [[null, "Product 23"], [null, "Product 24"], [null, "Product 25"]]);
    assert.equal(await c.del("product:p-023"), 1);
    assert.equal(await c.call("INVALIDATE", "product:p-024"), 1);
  } finally {
    c.disconnect();
  }
});

await check("Redis.Cluster: multi().exec()", async () => {
  const c = cluster();
  try {
    assert.deepEqual(await c.multi().hget("product:p-026", "name").exec(), [[null, "Product 26"]]);
  } finally {
    c.disconnect();
  }
});

redis.disconnect();
done();
