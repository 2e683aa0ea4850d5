"use strict";
// The dashboard: polls /stats and /healthz every second, draws two small
// charts, and runs the demo actions (POST /demo/...) through the daemon's
// own client path. No external assets.
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
const series = { hitrate: [], rps: [] };
let last = null;

function fmtUs(us) {
  if (us === undefined) return "–";
  return us >= 1000 ? (us / 1000).toFixed(us >= 100000 ? 0 : 1) + " ms" : us + " µs";
}

function draw(canvas, data, max, color) {
  const c = canvas.getContext("2d"), w = canvas.width, h = canvas.height;
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

async function tick() {
  try {
    const s = await (await fetch("/stats", { cache: "no-store" })).json();
    const now = performance.now();
    const reads = s.hits + s.misses + s.stale_hits + s.negative_hits;
    if (last) {
      const dt = (now - last.t) / 1000, d = reads - last.reads;
      push(series.rps, d >= 0 ? d / dt : 0);
    }
    last = { t: now, reads };
    push(series.hitrate, s.hit_rate_pct);
    $("version").textContent = "v" + s.build_version;
    $("uptime").textContent = "up " + s.uptime_s + " s";
    $("c-hitrate").textContent = s.hit_rate_pct + " %";
    $("c-rps").textContent = series.rps.length ? Math.round(series.rps[series.rps.length - 1]) : "–";
    $("c-saved").textContent = s.coalesced + s.stampedes_suppressed;
    $("c-upstream").textContent = s.upstream_requests;
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
    const h = await fetch("/healthz", { cache: "no-store" });
    const text = (await h.text()).trim();
    $("health").textContent = h.ok ? "Redis OK" : text;
    $("health").className = "badge " + (h.ok ? "ok" : "bad");
  } catch (e) {
    $("health").textContent = "daemon unreachable"; $("health").className = "badge bad";
  }
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
    $("record").textContent = JSON.stringify(read.reply, null, 1);
  } finally { busy(false); }
}

async function doUpdate() {
  busy(true);
  try {
    const r = await demo("update", { key: $("key").value, field: $("field").value, value: $("value").value });
    const v = r.steps ? r.steps[0].reply : r.error;
    $("update-result").textContent = v === 1 ? "updated in the cache (TTL unchanged)" :
      v === 0 ? "not cached: nothing written" : JSON.stringify(v);
  } finally { busy(false); }
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
    const r = await demo("stampede", { key: $("key").value, n: $("n").value });
    const el = $("stampede-result");
    if (r.error) { el.replaceChildren(node("span", { className: "err" }, r.error)); return; }
    el.dataset.upstream = r.upstream_reads;
    el.dataset.readers = r.readers;
    el.replaceChildren(`${r.readers} concurrent reads → `,
      node("span", { id: "stampede-upstream", className: "hit" }, r.upstream_reads),
      ` upstream read${r.upstream_reads === 1 ? "" : "s"}; ${r.coalesced} coalesced; slowest reader ${fmtUs(r.slowest_us)}`,
      ...(r.errors ? ["; ", node("span", { className: "err" }, `${r.errors} errors`)] : []));
  } finally { busy(false); }
}

async function init() {
  $("b-read").onclick = doRead;
  $("b-update").onclick = doUpdate;
  $("b-invalidate").onclick = doInvalidate;
  $("b-stampede").onclick = doStampede;
  $("b-reset").onclick = async () => { await fetch("/stats/reset", { method: "POST" }); last = null; };
  // 404 when admin_demo is off, 400 (no key) when on.
  const probe = await fetch("/demo/read", { method: "POST" });
  $(probe.status === 404 ? "demo-off" : "demo-on").hidden = false;
  tick();
  setInterval(tick, 1000);
  // Driven from the URL, e.g. /?run=stampede&n=50&key=product:p-001
  const u = new URLSearchParams(location.search);
  if (u.get("key")) $("key").value = u.get("key");
  if (u.get("n")) $("n").value = u.get("n");
  const run = { read: "b-read", stampede: "b-stampede", invalidate: "b-invalidate", update: "b-update" }[u.get("run")];
  if (run && probe.status !== 404) $(run).click();
}
init();
