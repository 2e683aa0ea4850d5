/* SPDX-License-Identifier: BSD-3-Clause */
"use strict";
// The dashboard: polls /stats and /readyz every second and /daemons every
// two, draws two small charts from the same samples as the cards, and runs
// the demo actions (POST /demo/...) through the daemon's own client path.
// No external assets.
//
// Nothing is ever parsed as HTML: a key comes from the URL (a link anyone
// can send), and replies carry keys, Redis values and error messages back.
// The page is built with node() and textContent, never innerHTML.
const $ = (id) => document.getElementById(id);

// An element with PROPS (className, id: constants only) and CHILDREN,
// where a string child becomes a text node.
function node(tag, props, ...children) {
  const e = document.createElement(tag);
  Object.assign(e, props);
  e.append(...children.map((c) => (c instanceof Node ? c : String(c))));
  return e;
}

const HISTORY = 120;
const WINDOW_MS = 10000;
// One sample a second: {t, reads, served}. A card and its chart are both
// computed from these, so the card is always the chart's last point.
let samples = [];
const series = { hitrate: [], rps: [] };

// Reads as /stats counts them: every read is a fresh, stale or negative
// hit or a miss, and a coalesced read is a miss that joined a fill.
function reads(c) { return c.hits + c.stale_hits + c.negative_hits + c.misses; }
function served(c) { return c.hits + c.stale_hits + c.negative_hits; }
function pct(num, den) { return den ? (100 * num / den).toFixed(1) + " %" : "–"; }

// Reads per second over the last WINDOW_MS of samples ending at i.
function rateAt(i) {
  let j = i;
  while (j > 0 && samples[i].t - samples[j - 1].t <= WINDOW_MS) j--;
  const dt = (samples[i].t - samples[j].t) / 1000;
  return dt > 0 ? (samples[i].reads - samples[j].reads) / dt : 0;
}

function fmtUs(us) {
  if (us === undefined) return "–";
  return us >= 1000 ? (us / 1000).toFixed(us >= 100000 ? 0 : 1) + " ms" : us + " µs";
}

function draw(canvas, data, max, color) {
  // Drawn at the size the layout gives it (the CSS width), so it stays
  // sharp and lines up with the cards at any window width.
  const ratio = window.devicePixelRatio || 1;
  canvas.width = Math.max(1, Math.round(canvas.clientWidth * ratio));
  canvas.height = Math.max(1, Math.round(canvas.clientHeight * ratio));
  const c = canvas.getContext("2d");
  c.setTransform(ratio, 0, 0, ratio, 0, 0);
  const w = canvas.clientWidth, h = canvas.clientHeight;
  canvas.dataset.last = data.length ? String(data[data.length - 1]) : "";
  c.clearRect(0, 0, w, h);
  c.strokeStyle = "#e3e6ee"; c.lineWidth = 1;
  for (let i = 1; i < 4; i++) { c.beginPath(); c.moveTo(0, h * i / 4); c.lineTo(w, h * i / 4); c.stroke(); }
  const top = Math.max(max || 0, ...data, 1);
  c.fillStyle = "#6b7385"; c.font = "11px sans-serif"; c.fillText(String(Math.round(top)), 4, 12);
  if (data.length < 2) return;
  c.strokeStyle = color; c.lineWidth = 2; c.beginPath();
  data.forEach((v, i) => {
    const x = w - (data.length - 1 - i) * (w / (HISTORY - 1)), y = h - 4 - (v / top) * (h - 16);
    i ? c.lineTo(x, y) : c.moveTo(x, y);
  });
  c.stroke();
}

function push(arr, v) { arr.push(v); if (arr.length > HISTORY) arr.shift(); }

const OUTCOMES = ["hit", "miss", "stale", "negative", "error"];

function card(id, text, value) { $(id).textContent = text; $(id).dataset.value = String(value); }

async function tick() {
  try {
    const s = await (await fetch("/stats", { cache: "no-store" })).json();
    const r = reads(s), hit = served(s);
    if (samples.length && r < samples[samples.length - 1].reads) samples = [];     // counters reset
    samples.push({ t: performance.now(), reads: r });
    if (samples.length > HISTORY + WINDOW_MS / 1000) samples.shift();
    const rps = rateAt(samples.length - 1), ratio = r ? 100 * hit / r : 0;
    push(series.rps, rps);
    push(series.hitrate, ratio);
    $("version").textContent = "v" + s.build_version;
    $("uptime").textContent = "up " + s.uptime_s + " s";
    card("c-hitrate", pct(hit, r), ratio);
    $("c-hitrate-sub").textContent = r ? `${hit} of ${r} reads from the cache` : "no reads yet";
    card("c-rps", samples.length > 1 ? (rps < 10 ? rps.toFixed(1) : Math.round(rps)) : "–", rps);
    card("c-coalesced", s.coalesced, s.coalesced);
    card("c-upstream", s.upstream_requests, s.upstream_requests);
    $("c-upstream-sub").textContent = s.stampedes_suppressed ?
      `${s.stampedes_suppressed} fill${s.stampedes_suppressed === 1 ? "" : "s"} waited on another daemon's` : "HTTP requests to upstreams";
    $("c-clients").textContent = s.clients_connected;
    $("c-flights").textContent = s.flights_in_progress !== undefined ? s.flights_in_progress : "–";
    draw($("ch-hitrate"), series.hitrate, 100, "#1a8a4a");
    draw($("ch-rps"), series.rps, 0, "#2f6fdf");
    const row = (label, p) => {
      const n = s[p + "count"], q = (k) => (n ? fmtUs(s[p + k]) : "–");
      return node("tr", {}, ...[label, n, q("p50_us"), q("p99_us"), q("p999_us")].map((t) => node("td", {}, t)));
    };
    const rows = OUTCOMES.map((o) => row(o, "request_duration_" + o + "_"));
    rows.push(row("Redis round trip", "redis_duration_"));
    rows.push(row("upstream fetch", "upstream_duration_"));
    $("latency").tBodies[0].replaceChildren(...rows);
  } catch (e) { /* the daemon restarted: try again next second */ }
  try {
    // /readyz: 200 "ok", 200 "ok, degraded: ..." (Redis down, reads go to
    // the upstream), or 503 with the reason.
    const h = await fetch("/readyz", { cache: "no-store" });
    const text = (await h.text()).trim();
    const good = h.ok && text === "ok";
    $("health").textContent = good ? "Redis OK" : text;
    $("health").className = "badge " + (good ? "ok" : h.ok ? "warn" : "bad");
  } catch (e) {
    $("health").textContent = "daemon unreachable"; $("health").className = "badge bad";
  }
}

// The daemons sharing this Redis, from their heartbeats (GET /daemons).
let daemonNames = {};
async function tickDaemons() {
  let j;
  try {
    const r = await fetch("/daemons", { cache: "no-store" });
    j = await r.json();
    if (!r.ok) { $("daemons-note").textContent = j.error || "unavailable"; return; }
  } catch (e) { return; }
  const t = { reads: 0, served: 0, coalesced: 0, stampedes_suppressed: 0, upstream_requests: 0, clients_connected: 0 };
  daemonNames = {};
  const rows = j.daemons.map((d) => {
    const c = d.counters, n = reads(c);
    daemonNames[d.id] = d.listen;
    t.reads += n; t.served += served(c);
    for (const k of ["coalesced", "stampedes_suppressed", "upstream_requests", "clients_connected"]) t[k] += c[k];
    const tr = node("tr", { className: d.self ? "self" : "" }, ...[d.listen, d.version, (d.age_ms / 1000).toFixed(1) + " s ago",
      n, pct(served(c), n), c.coalesced, c.stampedes_suppressed, c.upstream_requests, c.clients_connected].map((x) => node("td", {}, x)));
    tr.dataset.id = d.id;
    return tr;
  });
  rows.push(node("tr", { className: "total" }, ...[`${j.daemons.length} daemon${j.daemons.length === 1 ? "" : "s"}`, "", "",
    t.reads, pct(t.served, t.reads), t.coalesced, t.stampedes_suppressed, t.upstream_requests, t.clients_connected]
    .map((x) => node("td", {}, x))));
  $("daemons").tBodies[0].replaceChildren(...rows);
  $("daemons").dataset.count = String(j.daemons.length);
  $("daemons-note").textContent = `(heartbeats in ${j.key}, every ${j.every_ms / 1000} s)`;
}

async function demo(action, params) {
  const q = new URLSearchParams(params).toString();
  const r = await fetch("/demo/" + action + "?" + q, { method: "POST" });
  return r.json();
}

let ttlTimer = null;
function countdown(ms) {
  clearInterval(ttlTimer);
  const end = performance.now() + ms;
  const show = () => {
    const left = Math.max(0, end - performance.now());
    $("ttl").textContent = ms < 0 ? "not cached" : (left / 1000).toFixed(1) + " s";
  };
  show();
  if (ms >= 0) ttlTimer = setInterval(show, 100);
}

function busy(on) { document.querySelectorAll("#demo button").forEach((b) => { b.disabled = on; }); }

async function doRead() {
  busy(true);
  try {
    const r = await demo("read", { key: $("key").value });
    if (r.error) { $("read-result").replaceChildren(node("span", { className: "err" }, r.error)); return; }
    const before = r.steps[0].reply, read = r.steps[1], after = r.steps[2].reply;
    const failed = read.reply && read.reply.error;
    const kind = failed ? "err" : before === -2 ? "miss" : "hit";
    const label = failed ? "ERROR " + read.reply.error :
      kind === "hit" ? "HIT: answered from Redis" : "MISS: fetched from the upstream, stored in Redis";
    $("read-result").replaceChildren(node("span", { className: kind }, label), ` in ${fmtUs(read.us)} · TTL `,
      node("span", { id: "ttl" }));
    countdown(typeof after === "number" ? after : -1);
    showRecord(read.reply);
  } finally { busy(false); }
}

// The record as a table, every field: HGETALL's alternating array, a raw
// value (GET) as one row, or what went wrong. Text only.
function showRecord(reply) {
  let rows = [], note = "";
  if (reply && reply.error) note = "error: " + reply.error;
  else if (Array.isArray(reply)) {
    for (let i = 0; i + 1 < reply.length; i += 2) rows.push([reply[i], reply[i + 1]]);
    note = rows.length ? `${rows.length} field${rows.length === 1 ? "" : "s"}` : "not found (cached as such)";
  } else if (reply === null) note = "not found (cached as such)";
  else { rows = [["(value)", reply]]; note = "raw value"; }
  $("record").tBodies[0].replaceChildren(...rows.map(([f, v]) =>
    node("tr", {}, node("td", {}, typeof f === "string" ? f : JSON.stringify(f)),
      node("td", {}, typeof v === "string" ? v : JSON.stringify(v)))));
  $("record").dataset.fields = String(rows.length);
  $("record-note").textContent = note;
}

async function doUpdate() {
  busy(true);
  try {
    const r = await demo("update", { key: $("key").value, field: $("field").value, value: $("value").value });
    const v = r.steps ? r.steps[0].reply : r.error;
    $("update-result").textContent = v === 1 ? "updated in the cache (TTL unchanged)" :
      v === 0 ? "not cached: nothing written" : JSON.stringify(v);
  } finally { busy(false); }
  // Show what a read gives now, not the record from before the update.
  if (!$("update-result").textContent.startsWith("not cached")) await doRead();
}

async function doInvalidate() {
  busy(true);
  try {
    const r = await demo("invalidate", { key: $("key").value });
    $("read-result").textContent = r.steps ? `invalidated: ${r.steps[0].reply} entry removed` : r.error;
    countdown(-1);
  } finally { busy(false); }
}

async function doStampede() {
  busy(true);
  $("stampede-result").textContent = "running…";
  try {
    const r = await demo("stampede", { key: $("key").value, n: $("n").value, across: $("across").checked ? "yes" : "no" });
    const el = $("stampede-result");
    if (r.error) { el.replaceChildren(node("span", { className: "err" }, r.error)); return; }
    el.dataset.upstream = r.upstream_reads;
    el.dataset.readers = r.readers;
    el.replaceChildren(`${r.readers} concurrent reads → `,
      node("span", { id: "stampede-upstream", className: "hit" }, r.upstream_reads),
      ` upstream read${r.upstream_reads === 1 ? "" : "s"}` + (r.daemons ? ` on ${r.daemons.length} daemons` : "") +
      `; ${r.coalesced} coalesced; slowest reader ${fmtUs(r.slowest_us)}`,
      ...(r.errors ? ["; ", node("span", { className: "err" }, `${r.errors} errors`)] : []));
    const t = $("stampede-daemons");
    t.hidden = !r.daemons;
    t.tBodies[0].replaceChildren(...(r.daemons || []).map((d) => {
      const tr = node("tr", { className: d.self ? "self" : "" }, ...[d.listen, d.readers, d.upstream_reads ?? "?",
        d.coalesced ?? "?", d.stampedes_suppressed ?? "?"].map((x) => node("td", {}, x)));
      tr.dataset.id = d.id;
      return tr;
    }));
  } finally { busy(false); }
}

async function init() {
  $("b-read").onclick = doRead;
  $("b-update").onclick = doUpdate;
  $("b-invalidate").onclick = doInvalidate;
  $("b-stampede").onclick = doStampede;
  $("b-reset").onclick = async () => { await fetch("/stats/reset", { method: "POST" }); samples = []; };
  // 404 when admin_demo is off, 400 (no key) when on.
  const probe = await fetch("/demo/read", { method: "POST" });
  $(probe.status === 404 ? "demo-off" : "demo-on").hidden = false;
  tick();
  setInterval(tick, 1000);
  tickDaemons();
  setInterval(tickDaemons, 2000);
  // Driven from the URL, e.g. /?run=stampede&n=50&key=product:p-001&across=yes
  // (also field= and value= for run=update).
  const u = new URLSearchParams(location.search);
  for (const k of ["key", "n", "field", "value"]) if (u.get(k) !== null) $(k).value = u.get(k);
  $("across").checked = u.get("across") === "yes";
  const run = { read: "b-read", stampede: "b-stampede", invalidate: "b-invalidate", update: "b-update" }[u.get("run")];
  if (run && probe.status !== 404) $(run).click();
}
init();
