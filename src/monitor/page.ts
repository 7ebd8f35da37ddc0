/**
 * `/`: the live status page — one self-contained HTML document (inline CSS and
 * script, no fonts, images or requests beyond its own `events` stream), so it works
 * with no network and under a Content-Security-Policy that forbids anything else.
 * Data arrives by server-sent events (/events): a snapshot, then one sample a second.
 * Every figure is set with `textContent`: nothing received is parsed as HTML.
 */

/** The page, its script allowed by `nonce` (CSP `script-src 'nonce-…'`). */
export function statusPage(nonce: string): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>backbone monitor</title>
<link rel="icon" href="data:,">
<style nonce="${nonce}">
  :root { --bg:#0f1419; --panel:#182029; --line:#2a3642; --text:#d8e0e8; --dim:#8a99a8;
          --in:#4fb3ff; --out:#7ddc8b; --bad:#ff6b6b; --ok:#7ddc8b; }
  * { box-sizing: border-box; }
  body { margin:0; background:var(--bg); color:var(--text);
         font:14px/1.4 system-ui, -apple-system, "Segoe UI", sans-serif; }
  header { display:flex; align-items:baseline; gap:16px; padding:14px 20px;
           border-bottom:1px solid var(--line); }
  header h1 { font-size:18px; margin:0; font-weight:600; }
  header .meta { color:var(--dim); }
  #health { margin-left:auto; padding:2px 10px; border-radius:10px; font-weight:600; }
  #health.ok { background:#1d3a26; color:var(--ok); }
  #health.bad { background:#3f1d1d; color:var(--bad); }
  main { padding:16px 20px; display:grid; gap:16px; grid-template-columns:repeat(6, minmax(0, 1fr)); }
  .card { background:var(--panel); border:1px solid var(--line); border-radius:8px; padding:12px 14px; }
  .card .label { color:var(--dim); font-size:12px; text-transform:uppercase; letter-spacing:.04em; }
  .card .value { font-size:28px; font-weight:600; font-variant-numeric:tabular-nums; }
  .card .value.small { font-size:18px; line-height:42px; white-space:nowrap; }
  .wide { grid-column:span 6; }
  .half { grid-column:span 3; }
  h2 { font-size:13px; margin:0 0 8px; color:var(--dim); text-transform:uppercase; letter-spacing:.04em; }
  svg { width:100%; height:240px; display:block; }
  svg text { fill:var(--dim); font-size:11px; }
  .legend span { margin-right:14px; }
  .legend i { display:inline-block; width:10px; height:3px; margin-right:5px; vertical-align:middle; }
  .legend .k-in { background:var(--in); } .legend .k-out { background:var(--out); }
  table { width:100%; border-collapse:collapse; font-variant-numeric:tabular-nums; }
  td, th { text-align:left; padding:4px 6px; border-bottom:1px solid var(--line); }
  th { color:var(--dim); font-weight:500; font-size:12px; }
  .empty { color:var(--dim); }
  #stream { color:var(--dim); font-size:12px; }
  @media (max-width:900px) { main { grid-template-columns:repeat(2, minmax(0, 1fr)); } .wide, .half { grid-column:span 2; } }
</style>
</head>
<body>
<header>
  <h1>backbone</h1>
  <span class="meta" id="node">…</span>
  <span class="meta" id="uptime"></span>
  <span class="meta" id="stream">connecting…</span>
  <span id="health">…</span>
</header>
<main>
  <div class="card"><div class="label">Clients online</div><div class="value" id="clients">–</div></div>
  <div class="card"><div class="label">Connections</div><div class="value" id="connections">–</div></div>
  <div class="card"><div class="label">Messages in / s</div><div class="value" id="rate-in">–</div></div>
  <div class="card"><div class="label">Messages out / s</div><div class="value" id="rate-out">–</div></div>
  <div class="card"><div class="label">Offline queue</div><div class="value" id="queue">–</div></div>
  <div class="card"><div class="label">Traffic in / out</div><div class="value small" id="bytes">–</div></div>
  <div class="card wide">
    <h2>Messages per second, last <span id="span">5 minutes</span></h2>
    <div class="legend"><span><i class="k-in"></i>sent by clients</span><span><i class="k-out"></i>delivered to clients</span></div>
    <svg id="chart" viewBox="0 0 1000 240" preserveAspectRatio="none" role="img" aria-label="messages per second"></svg>
  </div>
  <div class="card half">
    <h2>Recent refusals</h2>
    <table><thead><tr><th>Time</th><th>What</th><th>Reason</th><th>Count</th></tr></thead>
    <tbody id="refusals"><tr><td colspan="4" class="empty">none</td></tr></tbody></table>
  </div>
  <div class="card half">
    <h2>Nodes</h2>
    <table><thead><tr><th>Node</th><th>Clients</th><th>Last seen</th></tr></thead>
    <tbody id="nodes"></tbody></table>
  </div>
</main>
<script nonce="${nonce}">
"use strict";
const WINDOW = 300; // seconds shown
const $ = (id) => document.getElementById(id);
const NS = "http://www.w3.org/2000/svg";
let samples = [], refusals = [], started = 0;
const num = (n) => n >= 1e6 ? (n / 1e6).toFixed(1) + "M" : n >= 1e4 ? (n / 1e3).toFixed(1) + "k" : String(n);
const bytes = (n) => n >= 1048576 ? (n / 1048576).toFixed(1) + " MiB/s" : n >= 1024 ? (n / 1024).toFixed(1) + " KiB/s" : n + " B/s";
const clock = (t) => new Date(t).toLocaleTimeString();
function since(ms) {
  let s = Math.floor(ms / 1000); const d = Math.floor(s / 86400); s %= 86400;
  const h = Math.floor(s / 3600); s %= 3600; const m = Math.floor(s / 60); s %= 60;
  return "up " + (d ? d + "d " : "") + (d || h ? h + "h " : "") + (d || h || m ? m + "m " : "") + s + "s";
}
function el(tag, text, cls) { const e = document.createElement(tag); e.textContent = text; if (cls) e.className = cls; return e; }
function svg(tag, attrs, text) {
  const e = document.createElementNS(NS, tag);
  for (const k in attrs) e.setAttribute(k, attrs[k]);
  if (text !== undefined) e.textContent = text;
  return e;
}
function drawChart() {
  const c = $("chart"); c.replaceChildren();
  const W = 1000, H = 240, L = 50, B = 20, T = 8;
  const now = samples.length ? samples[samples.length - 1].t : Date.now();
  const shown = samples.filter((s) => s.t > now - WINDOW * 1000);
  let top = 10; for (const s of shown) top = Math.max(top, s.inPerSec, s.outPerSec);
  const mag = Math.pow(10, Math.floor(Math.log10(top))); top = Math.ceil(top / mag) * mag;
  const x = (t) => L + ((t - (now - WINDOW * 1000)) / (WINDOW * 1000)) * (W - L);
  const y = (v) => T + (1 - v / top) * (H - B - T);
  for (let i = 0; i <= 4; i++) {
    const v = (top * i) / 4;
    c.append(svg("line", { x1: L, x2: W, y1: y(v), y2: y(v), stroke: "#2a3642" }));
    c.append(svg("text", { x: L - 6, y: y(v) + 4, "text-anchor": "end" }, num(Math.round(v))));
  }
  for (let m = 0; m <= WINDOW / 60; m++) {
    const t = now - m * 60000;
    c.append(svg("text", { x: x(t), y: H - 4, "text-anchor": m === 0 ? "end" : "middle" }, m === 0 ? "now" : "-" + m + "m"));
  }
  // Sent under delivered, wider, so both show where they coincide.
  for (const [key, colour, width] of [["inPerSec", "#4fb3ff", 4], ["outPerSec", "#7ddc8b", 1.5]]) {
    const pts = shown.map((s) => x(s.t).toFixed(1) + "," + y(s[key]).toFixed(1)).join(" ");
    c.append(svg("polyline", { points: pts, fill: "none", stroke: colour, "stroke-width": width, "stroke-linejoin": "round", "vector-effect": "non-scaling-stroke" }));
  }
}
function drawRefusals() {
  const body = $("refusals"); body.replaceChildren();
  if (!refusals.length) { const tr = el("tr", ""); const td = el("td", "none", "empty"); td.colSpan = 4; tr.append(td); body.append(tr); return; }
  for (const r of refusals.slice(-12).reverse()) {
    const tr = el("tr", ""); tr.append(el("td", clock(r.t)), el("td", r.what), el("td", r.reason.replace(/_/g, " ")), el("td", num(r.count))); body.append(tr);
  }
}
function drawNodes(nodes) {
  const body = $("nodes"); body.replaceChildren();
  for (const n of nodes) {
    const tr = el("tr", ""); tr.append(el("td", n.name + (n.self ? " (this node)" : "")), el("td", num(n.clients)), el("td", clock(n.seen))); body.append(tr);
  }
}
function drawFigures(h) {
  const s = samples[samples.length - 1];
  if (s) {
    $("clients").textContent = num(s.clients); $("connections").textContent = num(s.connections);
    $("rate-in").textContent = num(s.inPerSec); $("rate-out").textContent = num(s.outPerSec);
    $("queue").textContent = num(s.queue);
    $("bytes").textContent = bytes(s.bytesInPerSec) + " / " + bytes(s.bytesOutPerSec);
    $("uptime").textContent = since(s.t - started);
  }
  if (h) { const e = $("health"); e.textContent = h.ok ? "healthy" : "unhealthy: " + h.reason; e.className = h.ok ? "ok" : "bad"; }
}
const events = new EventSource("events");
events.addEventListener("snapshot", (e) => {
  const d = JSON.parse(e.data);
  samples = d.samples; refusals = d.refusals; started = d.started;
  $("node").textContent = d.node + " · v" + d.version;
  drawFigures(d.health); drawChart(); drawRefusals(); drawNodes(d.nodes);
});
events.addEventListener("sample", (e) => {
  const d = JSON.parse(e.data);
  samples.push(d.sample); if (samples.length > 3600) samples.shift();
  if (d.refusals.length) { refusals.push(...d.refusals); refusals = refusals.slice(-50); drawRefusals(); }
  drawFigures(d.health); drawChart(); drawNodes(d.nodes);
  $("stream").textContent = "live";
});
events.onopen = () => { $("stream").textContent = "live"; };
events.onerror = () => { $("stream").textContent = "reconnecting…"; };
</script>
</body>
</html>
`;
}
