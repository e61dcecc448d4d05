// Report page: one job's report (report.html?job=ID), or jobs side by side (?job=A&job=B…), each
// with its CSV download.
import { API, get, message } from "./api.js";
import { chip, fmtBytes, fmtInt, fmtTime, h } from "./dom.js";

const form = document.getElementById("report-form");
const status = document.getElementById("report-status");
const target = document.getElementById("report");

function jobsFromUrl() {
  return new URLSearchParams(window.location.search).getAll("job").filter(Boolean);
}

function csvLink(path, params) {
  const u = new URL(API + path, window.location.origin);
  for (const [name, value] of params) u.searchParams.append(name, value);
  u.searchParams.set("format", "csv");
  return h("a", { class: "button secondary", href: u.pathname + u.search, download: "" }, "Download CSV");
}

function seconds(value) {
  return value === null || value === undefined ? "–" : `${value.toFixed(1)} s`;
}

function cards(pairs) {
  return h("dl", { class: "report-cards" }, ...pairs.map(([k, v]) => h("div", {}, h("dt", {}, k), h("dd", {}, v))));
}

function table(caption, head, rows) {
  return h("div", { class: "table-wrap" }, h("table", { class: "stack" }, h("caption", {}, caption),
    h("thead", {}, h("tr", {}, ...head.map((c) => h("th", { scope: "col" }, c)))),
    h("tbody", {}, ...rows.map((r) => h("tr", {}, ...r.map((c, i) => h("td", { "data-label": head[i] }, c)))))));
}

async function showReport(jobId) {
  const answer = await get(`/scan/reports/jobs/${encodeURIComponent(jobId)}`);
  if (!answer.ok) {
    status.textContent = `No report: ${message(answer)}`;
    return;
  }
  const r = answer.body;
  status.textContent = "";
  document.getElementById("report-title").textContent = `Job report: ${r.job_id}`;
  target.replaceChildren(
    cards([
      ["Connector", r.connector_name || r.connector_uuid || "–"], ["Status", r.status || "–"],
      ["Started", fmtTime(r.started)], ["Finished", r.finished ? fmtTime(r.finished) : "–"],
      ["Duration", seconds(r.duration_s)], ["Results", fmtInt(r.results)], ["Errors", fmtInt(r.errors)],
      ["Scanned", fmtBytes(r.bytes_scanned)], ["Files/s", r.files_per_s ?? "–"],
    ]),
    h("h3", {}, "Verdicts"),
    h("p", {}, ...Object.entries(r.verdicts).map(([v, n]) => h("span", {}, chip(v, "v"), ` ${fmtInt(n)} `))),
    table(`Malicious files${r.malicious_truncated ? " (first 1,000)" : ""}`,
      ["Time", "Location", "Threat", "Action", "SHA-256"],
      r.malicious.map((m) => [fmtTime(m.timestamp), m.location, m.threat_name || m.threat_type || "–",
        m.action_applied ? `${m.action}: done` : `${m.action}: ${m.action_status}`, m.sha256])),
    table(`Errors${r.failures_truncated ? " (first 1,000)" : ""}`, ["Time", "Location", "Error"],
      r.failures.map((f) => [fmtTime(f.timestamp), f.location, f.error])),
    h("p", { class: "exports" }, csvLink(`/scan/reports/jobs/${encodeURIComponent(jobId)}`, [])),
  );
}

async function showComparison(jobIds) {
  const params = jobIds.map((j) => ["job", j]);
  const answer = await get("/scan/reports/compare", { job: jobIds });
  if (!answer.ok) {
    status.textContent = `No comparison: ${message(answer)}`;
    return;
  }
  const { jobs, verdicts } = answer.body;
  status.textContent = "";
  document.getElementById("report-title").textContent = `${jobs.length} jobs compared`;
  const head = ["Job", "Connector", "Status", "Started", "Duration", "Results", ...verdicts, "Errors", "Scanned", "Files/s"];
  target.replaceChildren(
    table("Jobs side by side", head, jobs.map((j) => [j.job_id, j.connector_name || "–", j.status || "–",
      fmtTime(j.started), seconds(j.duration_s), fmtInt(j.results), ...verdicts.map((v) => fmtInt(j.verdicts[v] || 0)),
      fmtInt(j.errors), fmtBytes(j.bytes_scanned), j.files_per_s ?? "–"])),
    h("p", { class: "exports" }, csvLink("/scan/reports/compare", params)),
  );
}

function show(jobIds) {
  form.jobs.value = jobIds.join(", ");
  if (jobIds.length === 1) showReport(jobIds[0]);
  else if (jobIds.length > 1) showComparison(jobIds);
}

form.addEventListener("submit", (event) => {
  event.preventDefault();
  const jobIds = form.jobs.value.split(/[\s,]+/).filter(Boolean);
  const query = new URLSearchParams(jobIds.map((j) => ["job", j]));
  history.replaceState(null, "", `?${query}`);
  show(jobIds);
});

show(jobsFromUrl());
