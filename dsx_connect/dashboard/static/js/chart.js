// Charts drawn as inline SVG: no library, nothing fetched. Each chart is one <svg role="img"> whose
// aria-label says what it shows.
const NS = "http://www.w3.org/2000/svg";

function s(tag, attrs = {}, text) {
  const el = document.createElementNS(NS, tag);
  for (const [name, value] of Object.entries(attrs)) el.setAttribute(name, String(value));
  if (text !== undefined) el.textContent = text;
  return el;
}

function svg(width, height, label) {
  const root = s("svg", { viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": label });
  root.append(s("title", {}, label));
  return root;
}

/** Horizontal bars: rows of {label, value, cls}. */
export function barChart(rows, { width = 520, rowHeight = 26 } = {}) {
  const label = rows.map((r) => `${r.label} ${r.value}`).join(", ") || "no data";
  const height = Math.max(rows.length, 1) * rowHeight + 8;
  const root = svg(width, height, `Verdict totals: ${label}`);
  const max = Math.max(1, ...rows.map((r) => r.value));
  const left = 150;
  const right = 70;
  rows.forEach((r, i) => {
    const y = 4 + i * rowHeight;
    const w = r.value > 0 ? Math.max(2, ((width - left - right) * r.value) / max) : 0;
    root.append(s("text", { x: left - 8, y: y + rowHeight / 2 + 4, "text-anchor": "end", class: "bar-label" }, r.label));
    root.append(s("rect", { x: left, y: y + 4, width: w, height: rowHeight - 8, rx: 3, class: r.cls, fill: "currentColor" }));
    root.append(s("text", { x: left + w + 6, y: y + rowHeight / 2 + 4 }, r.value.toLocaleString("en-US")));
  });
  return root;
}

/** A line over time: points of {t (ms), y}; the x axis spans ``spanMs`` up to now. */
export function lineChart(points, { width = 520, height = 200, spanMs = 600000, unit = "files/s", title = "Throughput", cls = "" } = {}) {
  const peak = Math.max(0, ...points.map((p) => p.y));
  const latest = points.length ? points[points.length - 1].y : 0;
  const root = svg(width, height,
    `${title} over the last ${Math.round(spanMs / 60000)} minutes: now ${latest.toFixed(1)} ${unit}, peak ${peak.toFixed(1)} ${unit}`);
  if (cls) root.classList.add(cls);
  const pad = { left: 48, right: 10, top: 10, bottom: 24 };
  const innerW = width - pad.left - pad.right;
  const innerH = height - pad.top - pad.bottom;
  const top = niceCeiling(peak);
  const now = Date.now();
  const x = (t) => pad.left + innerW * (1 - Math.min(1, Math.max(0, (now - t) / spanMs)));
  const y = (v) => pad.top + innerH * (1 - v / top);
  for (const fraction of [0, 0.5, 1]) {
    const v = top * fraction;
    root.append(s("line", { x1: pad.left, x2: width - pad.right, y1: y(v), y2: y(v), class: "grid" }));
    root.append(s("text", { x: pad.left - 6, y: y(v) + 4, "text-anchor": "end" }, formatTick(v)));
  }
  root.append(s("text", { x: pad.left, y: height - 6 }, `−${Math.round(spanMs / 60000)} min`));
  root.append(s("text", { x: width - pad.right, y: height - 6, "text-anchor": "end" }, "now"));
  if (points.length > 1) {
    const path = points.map((p, i) => `${i ? "L" : "M"}${x(p.t).toFixed(1)},${y(p.y).toFixed(1)}`).join("");
    const first = points[0];
    const last = points[points.length - 1];
    root.append(s("path", { d: `${path}L${x(last.t).toFixed(1)},${y(0)}L${x(first.t).toFixed(1)},${y(0)}Z`, class: "area" }));
    root.append(s("path", { d: path, class: "line" }));
  }
  return root;
}

function niceCeiling(v) {
  if (v <= 0) return 1;
  const magnitude = 10 ** Math.floor(Math.log10(v));
  return [1, 2, 5, 10].map((m) => m * magnitude).find((c) => c >= v);
}

function formatTick(v) {
  return v >= 100 ? Math.round(v).toLocaleString("en-US") : Number(v.toFixed(1)).toString();
}
