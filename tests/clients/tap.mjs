/* SPDX-License-Identifier: BSD-3-Clause */
// tap.mjs - what the client scripts share: the daemon's port, named checks
// with a deadline, one "ok"/"not ok" line each and a closing count.
//
// tests/test_client_libs.py runs each script with CACHASIDED_PORT set to a
// daemon in front of a real redis-server and the example upstream (the
// catalogue and generated products p-011 to p-100).
import assert from "node:assert/strict";

export { assert };

export const port = Number(process.env.CACHASIDED_PORT);
if (!port) {
  console.error("CACHASIDED_PORT is not set: tests/test_client_libs.py runs this script");
  process.exit(2);
}

const DEADLINE_MS = 20000;
let passed = 0;
let failed = 0;

export async function check(name, fn) {
  let timer;
  const deadline = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${DEADLINE_MS} ms`)), DEADLINE_MS);
  });
  try {
    await Promise.race([fn(), deadline]);
    passed++;
    console.log(`ok ${passed + failed} - ${name}`);
  } catch (err) {
    failed++;
    console.log(`not ok ${passed + failed} - ${name}`);
    for (const line of String(err && err.stack ? err.stack : err).split("\n").slice(0, 12))
      console.log(`#   ${line}`);
  } finally {
    clearTimeout(timer);
  }
}

// Ends the script: clients still reconnecting or connected do not keep it.
export function done() {
  console.log(`# ${passed} passed, ${failed} failed`);
  process.exit(failed ? 1 : 0);
}

// A generated product as the daemon answers HGETALL: the example upstream's
// JSON, each member a field, numbers and arrays as their JSON text.
export function product(n) {
  const id = `p-${String(n).padStart(3, "0")}`;
  return { id, name: `Product ${n}`, price: `${n}.99`, stock: String((n * 7) % 100), tags: '["demo"]' };
}

// The same product as the page namespace (format raw) answers GET: the body.
export function page(n) {
  const p = product(n);
  return `{"id":"${p.id}","name":"${p.name}","price":"${p.price}","stock":${p.stock},"tags":["demo"]}`;
}

// CLIENT LIST's text as one object per line ("id=7 addr=... name=x ...").
export function clientLines(text) {
  return text.trim().split("\n").map((line) =>
    Object.fromEntries(line.trim().split(" ").map((kv) => {
      const i = kv.indexOf("=");
      return [kv.slice(0, i), kv.slice(i + 1)];
    })));
}

// Rejects unless fn() rejects with an error whose message matches re.
export async function rejects(fn, re) {
  await assert.rejects(fn, (err) => {
    assert.match(String(err && err.message), re);
    return true;
  });
}
