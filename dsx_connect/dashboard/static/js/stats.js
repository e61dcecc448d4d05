// Stats view: verdict totals and throughput over time. Throughput is sampled by this page from
// /scan/stats every 2 s (kept for the browser tab's session, so a reload keeps the curve).
import { get } from "./api.js";
import { barChart, lineChart } from "./chart.js";
import { fmtBytes, fmtInt, h, slug } from "./dom.js";

const SAMPLE_MS = 2000;
const SPAN_MS = 10 * 60 * 1000;
const STORE = "dsx-connect:throughput";
let samples = restore();
let latest = null;
let visible = false;

export function initStats() {
  sample();
  setInterval(sample, SAMPLE_MS);
}

export function setStatsVisible(value) {
  visible = value;
  if (visible) render();
}

function restore() {
  try {
    return JSON.parse(sessionStorage.getItem(STORE) || "[]").filter((p) => Date.now() - p.t < SPAN_MS);
  } catch {
    return [];
  }
}

async function sample() {
  const answer = await get("/scan/stats");
  if (!answer.ok) return;
  latest = answer.body;
  samples.push({ t: Date.now(), total: latest.total });
  samples = samples.filter((p) => Date.now() - p.t < SPAN_MS);
  try {
    sessionStorage.setItem(STORE, JSON.stringify(samples));
  } catch {
    // storage full or disabled: the curve starts again on reload
  }
  if (visible) render();
}

function rates() {
  const points = [];
  for (let i = 1; i < samples.length; i += 1) {
    const [a, b] = [samples[i - 1], samples[i]];
    const seconds = (b.t - a.t) / 1000;
    if (seconds > 0 && b.total >= a.total) points.push({ t: b.t, y: (b.total - a.total) / seconds });
  }
  return points;
}

function render() {
  if (!latest) return;
  const actions = Object.values(latest.actions || {}).reduce((sum, n) => sum + n, 0);
  const cards = [
    ["scanned", "Scanned", fmtInt(latest.total)],
    ["malicious", "Malicious", fmtInt(latest.verdicts?.Malicious)],
    ["errors", "Errors", fmtInt(latest.errors)],
    ["bytes", "Bytes scanned", fmtBytes(latest.bytes_scanned)],
    ["actions", "Actions applied", fmtInt(actions)],
    ["retained", "Results kept", fmtInt(latest.retained_results)],
  ];
  document.getElementById("stats-cards").replaceChildren(
    ...cards.map(([key, label, value]) => h("div", { dataset: { stat: key } }, h("dt", {}, label), h("dd", {}, value))));
  const rows = Object.entries(latest.verdicts || {}).map(([label, value]) => ({ label, value, cls: `v-${slug(label)}` }));
  document.getElementById("verdict-chart").replaceChildren(barChart(rows));
  document.getElementById("throughput-chart").replaceChildren(lineChart(rates(), { spanMs: SPAN_MS }));
}
