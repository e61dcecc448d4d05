// Stats view: verdict totals (GET /scan/stats, every 2 s) and throughput per minute over the chosen
// window, drawn from the core's own history (GET /scan/stats/history): a reload, another tab or
// another operator sees the same curve.
import { get } from "./api.js";
import { barChart, lineChart } from "./chart.js";
import { fmtBytes, fmtInt, h, slug } from "./dom.js";

const SAMPLE_MS = 2000;
const HISTORY_MS = 15000;
const RANGE_STORE = "dsx-connect:throughput-range";
let latest = null;
let history = null;
let visible = false;
let minutes = Number(localStorage.getItem(RANGE_STORE)) || 60;

export function initStats() {
  const range = document.getElementById("throughput-range");
  if (range) {
    range.value = String(minutes);
    range.addEventListener("change", () => {
      minutes = Number(range.value) || 60;
      localStorage.setItem(RANGE_STORE, String(minutes));
      loadHistory();
    });
  }
  sample();
  loadHistory();
  setInterval(sample, SAMPLE_MS);
  setInterval(loadHistory, HISTORY_MS);
}

export function setStatsVisible(value) {
  visible = value;
  if (visible) {
    render();
    loadHistory();
  }
}

async function sample() {
  const answer = await get("/scan/stats");
  if (!answer.ok) return;
  latest = answer.body;
  if (visible) render();
}

async function loadHistory() {
  const answer = await get(`/scan/stats/history?minutes=${minutes}`);
  if (!answer.ok) return;
  history = answer.body;
  if (visible) render();
}

/** Files per second of each minute of the history: a whole minute over 60 s, the current one over
 * the seconds it has run. Points sit at each minute's end (the current one: now). */
function rates() {
  if (!history) return [];
  const start = Date.parse(history.start);
  const step = history.step_s * 1000;
  const now = Date.now();
  return history.total.map((count, i) => {
    const end = Math.min(start + (i + 1) * step, now);
    const seconds = Math.max(1, (end - (start + i * step)) / 1000);
    return { t: end, y: count / seconds };
  });
}

/** One verdict's results in each minute of the history, at each minute's end (the current one: now). */
function perMinute(verdict) {
  if (!history) return [];
  const start = Date.parse(history.start);
  const step = history.step_s * 1000;
  const counts = history.verdicts?.[verdict] || history.total.map(() => 0);
  return counts.map((count, i) => ({ t: Math.min(start + (i + 1) * step, Date.now()), y: count }));
}

function render() {
  if (latest) {
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
  }
  if (history) {
    const chart = document.getElementById("throughput-chart");
    chart.replaceChildren(lineChart(rates(), { spanMs: minutes * 60000 }));
    document.getElementById("malicious-chart").replaceChildren(lineChart(perMinute("Malicious"), {
      spanMs: minutes * 60000, unit: "per minute", title: "Malicious results", cls: "v-malicious",
    }));
    const inWindow = history.total.reduce((sum, n) => sum + n, 0);
    const byVerdict = Object.entries(history.verdicts || {})
      .map(([verdict, counts]) => `${verdict} ${fmtInt(counts.reduce((sum, n) => sum + n, 0))}`).join(", ");
    chart.dataset.total = String(inWindow);
    const summary = document.getElementById("throughput-summary");
    if (summary) summary.textContent = `${fmtInt(inWindow)} results in this window${byVerdict ? `: ${byVerdict}` : ""}`;
  }
}
