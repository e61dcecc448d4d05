// Connectors panel: live registrations (/subscribe/connector-registered), health, and starting a
// full scan after showing the connector's estimate.
import { get, message, post, subscribe } from "./api.js";
import { announce, chip, fmtAgo, fmtBytes, fmtInt, fmtTime, h, pathText } from "./dom.js";
import { jobCard, showJob } from "./jobs.js";
import { initSchedules, loadSchedules, openScheduleDialog, scheduleCell } from "./schedules.js";

const STALE_S = 150; // two missed heartbeats (every 60 s)
const connectors = new Map();
const health = new Map(); // uuid -> {ok, text}
const listeners = [];

export function initConnectors() {
  subscribe("/subscribe/connector-registered", {
    connectors: ({ connectors: list }) => {
      connectors.clear();
      for (const c of list) connectors.set(c.uuid, c);
      changed();
      list.forEach(probe);
    },
    connector: ({ event, connector }) => {
      if (event === "registered") connectors.set(connector.uuid, connector);
      else connectors.delete(connector.uuid);
      changed();
      announce(`Connector ${connector.name} ${event}`);
      if (event === "registered") probe(connector);
    },
  });
  setInterval(refresh, 30000);
  setInterval(render, 5000); // relative heartbeat times
  document.getElementById("scan-start").addEventListener("click", startScan);
  initSchedules(render);
}

/** Call ``fn(list)`` whenever the connector list changes. */
export function onConnectors(fn) {
  listeners.push(fn);
}

function changed() {
  render();
  const list = [...connectors.values()];
  listeners.forEach((fn) => fn(list));
}

async function refresh() {
  const answer = await get("/connectors/list");
  if (!answer.ok) return;
  connectors.clear();
  for (const c of answer.body) connectors.set(c.uuid, c);
  changed();
  answer.body.forEach(probe);
  loadSchedules();
}

async function probe(connector) {
  const answer = await get(`/connectors/healthz/${encodeURIComponent(connector.uuid)}`);
  health.set(connector.uuid, answer.ok ? { ok: true, text: "healthy" } : { ok: false, text: "unreachable", title: message(answer) });
  render();
}

function healthCell(c) {
  const seen = health.get(c.uuid);
  const age = (Date.now() - new Date(c.last_heartbeat).getTime()) / 1000;
  let text = seen ? seen.text : "checking…";
  let cls = seen ? (seen.ok ? "h-ok" : "h-bad") : "";
  if (age > STALE_S) [text, cls] = ["heartbeat late", "h-warn"];
  const status = c.status && c.status !== "ready" ? ` (${c.status})` : "";
  return h("span", { class: `chip ${cls}`, title: seen?.title }, text + status);
}

function render() {
  const body = document.querySelector("#connectors-table tbody");
  const rows = [...connectors.values()].sort((a, b) => a.name.localeCompare(b.name));
  body.replaceChildren(...rows.map((c) => {
    const button = h("button", { type: "button", class: "secondary", "aria-label": `Full scan of ${c.name}` }, "Full scan…");
    button.addEventListener("click", () => openScanDialog(c));
    const plan = h("button", { type: "button", class: "secondary", "aria-label": `Schedule of ${c.name}` }, "Schedule…");
    plan.addEventListener("click", () => openScheduleDialog(c));
    return h("tr", { dataset: { uuid: c.uuid } },
      h("td", { "data-label": "Name" }, h("strong", {}, c.display_name || c.name), " ",
        h("span", { class: "muted mono", title: c.uuid }, c.uuid.slice(0, 8))),
      h("td", { class: "path", "data-label": "Asset" }, pathText(c.asset_display_name || c.asset || "–")),
      h("td", { class: "path", "data-label": "Filter" }, c.filter || "–"),
      h("td", { "data-label": "Health" }, healthCell(c)),
      h("td", { "data-label": "Version" }, c.version || "–"),
      h("td", { title: fmtTime(c.last_heartbeat), "data-label": "Heartbeat" }, fmtAgo(c.last_heartbeat)),
      h("td", { "data-label": "Schedule" }, scheduleCell(c)),
      h("td", { "data-label": "", class: "row-actions" }, button, " ", plan));
  }));
  document.getElementById("connectors-empty").hidden = rows.length > 0;
}

let chosen = null;

async function openScanDialog(connector) {
  chosen = connector;
  const dialog = document.getElementById("scan-dialog");
  const estimate = document.getElementById("scan-estimate");
  const start = document.getElementById("scan-start");
  document.getElementById("scan-dialog-title").textContent = `Full scan of ${connector.display_name || connector.name}`;
  document.getElementById("scan-dialog-asset").replaceChildren(
    "Asset: ", ...pathText(connector.asset || "–"), connector.filter ? ` · filter ${connector.filter}` : "");
  document.getElementById("scan-error").hidden = true;
  estimate.textContent = "Asking the connector for an estimate…";
  estimate.dataset.state = "loading";
  start.disabled = false;
  document.getElementById("scan-force").checked = false;
  dialog.showModal();
  const answer = await get(`/connectors/estimate/${encodeURIComponent(connector.uuid)}`);
  if (chosen !== connector) return;
  if (answer.ok && answer.body.count !== null && answer.body.count !== undefined) {
    const bytes = answer.body.bytes !== undefined && answer.body.bytes !== null ? `, ${fmtBytes(answer.body.bytes)}` : "";
    const how = answer.body.confidence === "exact" ? "" : " (estimate)";
    estimate.textContent = `${fmtInt(answer.body.count)} files${bytes}${how} will be scanned.`;
  } else {
    estimate.textContent = answer.ok ? "The connector cannot tell how many files there are." : `No estimate: ${message(answer)}`;
  }
  estimate.dataset.state = "ready";
}

async function startScan() {
  const connector = chosen;
  const start = document.getElementById("scan-start");
  const error = document.getElementById("scan-error");
  start.disabled = true;
  const force = document.getElementById("scan-force").checked ? "?force=true" : "";
  const answer = await post(`/connectors/full_scan/${encodeURIComponent(connector.uuid)}${force}`);
  if (!answer.ok) {
    error.textContent = `The scan did not start: ${message(answer)}`;
    error.hidden = false;
    start.disabled = false;
    return;
  }
  const jobId = answer.body.job_id;
  const job = await get(`/scan/jobs/${encodeURIComponent(jobId)}`);
  showJob(job.ok ? job.body : { job_id: jobId, status: "running", connector_name: connector.name, kind: "full_scan" });
  document.getElementById("scan-dialog").close();
  announce(`Full scan started: job ${jobId}`);
  jobCard(jobId)?.focus();
}
