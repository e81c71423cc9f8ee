// hypo live: the research screen. No library, no network beyond this server: server-sent events from /events,
// the bed view's series from /api/beds/<room>, drawn as SVG. Research software, not a medical device.
"use strict";

const SVGNS = "http://www.w3.org/2000/svg";

function fmtAge(s) {
  if (s === null || s === undefined) return "never";
  if (s < 60) return Math.round(s) + " s";
  if (s < 3600) return Math.round(s / 60) + " min";
  return (s / 3600).toFixed(1) + " h";
}

function esc(t) {
  return String(t).replace(/[&<>"']/g, c => ({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"}[c]));
}

function connect(onEvent) {
  const conn = document.getElementById("conn");
  const es = new EventSource("/events");
  const handler = e => { conn.textContent = "live"; conn.classList.remove("down"); onEvent(JSON.parse(e.data)); };
  ["overview", "alarm", "prediction"].forEach(t => es.addEventListener(t, handler));
  es.onerror = () => { conn.textContent = "connection lost: retrying"; conn.classList.add("down"); };
  return es;
}

// ---- overview ------------------------------------------------------------------------------------------------
const beds = new Map();

function rowFor(room) {
  const body = document.querySelector("#beds tbody");
  let tr = body.querySelector(`tr[data-room="${CSS.escape(room)}"]`);
  if (!tr) {
    tr = document.createElement("tr");
    tr.dataset.room = room;
    tr.innerHTML = '<td class="room"></td><td class="risk"></td><td class="alarm"></td><td class="cuff"></td>' +
      '<td class="missing"></td><td class="fresh"></td><td class="status"></td>';
    tr.querySelector(".room").innerHTML = `<a href="/bed/${encodeURIComponent(room)}">${esc(room)}</a>`;
    const rows = Array.from(body.children);
    const after = rows.find(r => r.dataset.room > room);
    body.insertBefore(tr, after || null);
  }
  return tr;
}

function renderBed(b) {
  beds.set(b.room, b);
  const tr = rowFor(b.room);
  const p = b.p_hypotension;
  tr.querySelector(".risk").innerHTML = p === null ? '<span class="quiet">no prediction</span>' :
    `<span class="bar"><i style="width:${Math.round(100 * p)}%"></i></span>${(100 * p).toFixed(0)}%`;
  tr.querySelector(".alarm").innerHTML = b.alarm ? '<span class="alarm-badge">ALARM</span>' : '<span class="quiet">off</span>';
  tr.dataset.alarm = b.alarm ? "on" : "off";
  tr.classList.toggle("alarm-on", !!b.alarm);
  tr.querySelector(".cuff").textContent = b.cuff_map === null ? "none yet" :
    `${Math.round(b.cuff_map)} mmHg, ${fmtAge(b.cuff_age_s)} ago`;
  tr.querySelector(".missing").textContent = b.missing.length ? b.missing.join(", ") : "";
  const fresh = tr.querySelector(".fresh");
  fresh.innerHTML = b.stale ? `<span class="stale-badge">STALE</span> ${fmtAge(b.data_age_s)}` : `${fmtAge(b.data_age_s)} ago`;
  tr.dataset.stale = b.stale ? "yes" : "no";
  tr.classList.toggle("stale", !!b.stale);
  tr.querySelector(".status").textContent = b.status + (b.status === "waiting" && b.detail ? `: ${b.detail}` : "");
}

function overview() {
  connect(ev => {
    if (ev.type === "overview") {
      const m = ev.model;
      document.getElementById("model").textContent = `model ${m.name || "?"} k=${m.k ?? "?"}, window ${m.window_s} s ` +
        `every ${m.stride_s} s, horizon ${(m.horizon_s || 0) / 60} min; alarm: p >= ${m.threshold.toFixed(3)} ` +
        `${m.m} times, off below ${(m.threshold - m.hysteresis).toFixed(3)}` + (m.simulated ? "  [trained on simulated data]" : "");
      ev.beds.forEach(renderBed);
      document.getElementById("empty").style.display = ev.beds.length ? "none" : "";
    } else if (ev.type === "alarm") {
      renderBed(ev.bed);
    } else if (ev.type === "prediction" && beds.has(ev.room)) {
      renderBed(Object.assign({}, beds.get(ev.room), {p_hypotension: ev.p_hypotension, alarm: ev.alarm}));
    }
  });
}

// ---- bed view ------------------------------------------------------------------------------------------------
function el(parent, name, attrs, text) {
  const e = document.createElementNS(SVGNS, name);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  parent.appendChild(e);
  return e;
}

function frame(svg, t0, t1, lo, hi, ticks, unit) {
  while (svg.firstChild) svg.removeChild(svg.firstChild);
  const W = 900, H = 220, L = 48, R = 12, T = 10, B = 26;
  const x = t => L + (W - L - R) * (t - t0) / (t1 - t0);
  const y = v => T + (H - T - B) * (1 - (Math.min(hi, Math.max(lo, v)) - lo) / (hi - lo));  // kept in the frame
  el(svg, "rect", {x: L, y: T, width: W - L - R, height: H - T - B, fill: "#fbfcfd", stroke: "#d5d9e0"});
  ticks.forEach(v => {
    el(svg, "line", {x1: L, x2: W - R, y1: y(v), y2: y(v), stroke: "#eceff3"});
    el(svg, "text", {x: L - 6, y: y(v) + 4, "text-anchor": "end", "font-size": 11, fill: "#5a6272"}, v + unit);
  });
  for (let m = 0; m <= 60; m += 10) {
    const t = t1 - (60 - m) * 60;
    el(svg, "text", {x: x(t), y: H - 8, "text-anchor": "middle", "font-size": 11, fill: "#5a6272"},
       m === 60 ? "now" : `-${60 - m} min`);
  }
  return {x, y};
}

function path(points) {
  let d = "", pen = false, last = null;
  points.forEach(([px, py, gap]) => {
    if (py === null || gap) { pen = false; return; }
    d += (pen ? "L" : "M") + px.toFixed(1) + "," + py.toFixed(1);
    pen = true; last = px;
  });
  return d;
}

async function drawBed(room) {
  const r = await fetch(`/api/beds/${encodeURIComponent(room)}`);
  if (!r.ok) { document.getElementById("summary").textContent = "no such bed yet"; return; }
  const v = await r.json();
  const s = v.summary;
  document.getElementById("summary").innerHTML =
    `risk ${s.p_hypotension === null ? "none" : (100 * s.p_hypotension).toFixed(0) + "%"}; ` +
    (s.alarm ? '<span class="alarm-badge">ALARM</span>' : "alarm off") +
    `; last cuff MAP ${s.cuff_map === null ? "none" : Math.round(s.cuff_map) + " mmHg, " + fmtAge(s.cuff_age_s) + " ago"}` +
    (s.missing.length ? `; <span class="missing">missing ${esc(s.missing.join(", "))}</span>` : "") +
    (s.stale ? '; <span class="stale-badge">STALE</span>' : "");
  document.body.dataset.alarm = s.alarm ? "on" : "off";
  const t1 = v.now_s, t0 = t1 - 3600;
  const risk = document.getElementById("risk");
  const f = frame(risk, t0, t1, 0, 1, [0, 0.25, 0.5, 0.75, 1], "");
  v.alarms.forEach(([a, b]) => {
    const xa = f.x(Math.max(a, t0)), xb = f.x(b === null ? t1 : b);
    el(risk, "rect", {x: xa, y: 10, width: Math.max(1, xb - xa), height: 184, fill: "#f6c6c6", opacity: 0.8});
  });
  el(risk, "line", {x1: f.x(t0), x2: f.x(t1), y1: f.y(v.threshold), y2: f.y(v.threshold), stroke: "#c62828",
                     "stroke-dasharray": "6,4"});
  let prev = null;
  const pts = v.risk.map(([t, p]) => { const gap = prev !== null && t - prev > 2 * v.stride_s; prev = t;
                                       return [f.x(t), p === null ? null : f.y(p), gap]; });
  el(risk, "path", {d: path(pts), fill: "none", stroke: "#3b6fd8", "stroke-width": 2});
  const bp = document.getElementById("bp");
  const g = frame(bp, t0, t1, 30, 180, [40, 65, 100, 140, 180], "");
  el(bp, "line", {x1: g.x(t0), x2: g.x(t1), y1: g.y(65), y2: g.y(65), stroke: "#d08b00", "stroke-dasharray": "4,3"});
  prev = null;
  const art = v.art.map(([t, m]) => { const gap = prev !== null && t - prev > 30; prev = t; return [g.x(t), g.y(m), gap]; });
  el(bp, "path", {d: path(art), fill: "none", stroke: "#8e44ad", "stroke-width": 1.2});
  v.cuff.forEach(([t, sbp, map, dbp]) => {
    if (t < t0) return;
    if (sbp !== null && dbp !== null) el(bp, "line", {x1: g.x(t), x2: g.x(t), y1: g.y(sbp), y2: g.y(dbp), stroke: "#222"});
    if (map !== null) el(bp, "circle", {cx: g.x(t), cy: g.y(map), r: 3.2, fill: "#222"});
  });
}

function bedView() {
  const room = decodeURIComponent(location.pathname.slice("/bed/".length));
  document.getElementById("room").textContent = room;
  document.title = `hypo live: ${room} (research, silent mode)`;
  let pending = false;
  const redraw = () => { if (pending) return; pending = true; setTimeout(() => { pending = false; drawBed(room); }, 200); };
  redraw();
  setInterval(redraw, 5000);
  connect(ev => { if ((ev.type === "prediction" || ev.type === "alarm") && ev.room === room) redraw(); });
}

document.addEventListener("DOMContentLoaded", () => {
  if (document.body.dataset.page === "overview") overview(); else bedView();
});
