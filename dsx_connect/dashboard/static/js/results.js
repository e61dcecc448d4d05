// Results view: filters (verdict, connector, job, time range, hash, location prefix, threat), keyset
// paging, exports of the search, one result's detail, live arrivals.
import { API, get, message, subscribe } from "./api.js";
import { chip, fmtBytes, fmtInt, fmtTime, h, shortId } from "./dom.js";

const LIMIT = 25;
const RELOAD_MS = 1500; // live arrivals reload the first page at most this often
const state = {
  offset: 0, pages: [null], filters: {}, total: null, stream: null, fresh: 0, timer: null, seen: new Set(), loads: 0,
};

export function initResults() {
  const form = document.getElementById("results-filters");
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    applyFilters();
  });
  form.addEventListener("reset", () => setTimeout(applyFilters));
  form.verdict.addEventListener("change", applyFilters);
  form.connector.addEventListener("change", applyFilters);
  document.getElementById("results-prev").addEventListener("click", () => page(-1));
  updateLinks();
  document.getElementById("results-next").addEventListener("click", () => page(1));
}

/** Called when the view is shown or hidden: the live stream only runs while it is visible. */
export function setResultsVisible(visible) {
  if (visible && !state.stream) {
    state.stream = subscribe("/subscribe/scan-result", { scan_result: arrived });
    load();
    loadJobIds();
  } else if (!visible && state.stream) {
    state.stream.close();
    state.stream = null;
  }
}

export function filterByJob(jobId) {
  const form = document.getElementById("results-filters");
  form.job.value = jobId;
  applyFilters();
}

export function setConnectorOptions(list) {
  const select = document.getElementById("results-filters").connector;
  const current = select.value;
  select.replaceChildren(h("option", { value: "" }, "Any"),
    ...list.map((c) => h("option", { value: c.uuid }, c.display_name || c.name)));
  if ([...select.options].some((o) => o.value === current)) select.value = current;
}

/** A datetime-local value (the browser's time zone) as RFC 3339 UTC, or "" when empty. */
function utc(value) {
  return value ? new Date(value).toISOString() : "";
}

function applyFilters() {
  const form = document.getElementById("results-filters");
  state.filters = {
    verdict: form.verdict.value, connector: form.connector.value, job: form.job.value.trim(),
    since: utc(form.since.value), until: utc(form.until.value), sha256: form.sha256.value.trim().toLowerCase(),
    location_prefix: form.location_prefix.value, threat: form.threat.value.trim(),
  };
  state.offset = 0;
  state.pages = [null]; // pages[i]: the cursor that opens page i (keyset paging)
  state.fresh = 0;
  updateLinks();
  load();
}

function page(direction) {
  const index = state.offset / LIMIT + direction;
  if (index < 0 || state.pages[index] === undefined) return;
  state.offset = index * LIMIT;
  load();
}

function query(extra) {
  const u = new URL(API + "/scan/results/export", window.location.origin);
  for (const [name, value] of Object.entries({ ...state.filters, ...extra })) {
    if (value) u.searchParams.set(name, value);
  }
  return u.pathname + u.search;
}

/** Export links carry the current search; the report link appears once a job is chosen. */
function updateLinks() {
  document.getElementById("results-export-csv").href = query({ format: "csv" });
  document.getElementById("results-export-jsonl").href = query({ format: "jsonl" });
  const report = document.getElementById("results-report");
  report.hidden = !state.filters.job;
  report.href = state.filters.job ? `report.html?job=${encodeURIComponent(state.filters.job)}` : "#";
}

function matches(event) {
  const f = state.filters;
  return (!f.verdict || event.verdict === f.verdict) && (!f.connector || event.connector?.uuid === f.connector)
    && (!f.job || event.job_id === f.job) && (!f.sha256 || event.file_info?.sha256 === f.sha256)
    && (!f.location_prefix || (event.location || "").startsWith(f.location_prefix))
    && (!f.threat || event.verdict_details?.reason === f.threat || event.verdict_details?.threat_type === f.threat)
    && (!f.until || event.timestamp < f.until);
}

function arrived(event) {
  if (!matches(event)) return;
  state.fresh += 1;
  document.getElementById("results-live").textContent = `${fmtInt(state.fresh)} new results since this page was loaded`;
  if (state.offset === 0 && !state.timer) {
    state.timer = setTimeout(() => {
      state.timer = null;
      load();
    }, RELOAD_MS);
  }
}

async function loadJobIds() {
  const answer = await get("/scan/jobs", { limit: 20 });
  if (!answer.ok) return;
  document.getElementById("job-ids").replaceChildren(
    ...answer.body.items.map((j) => h("option", { value: j.job_id }, `${j.connector_name || ""} ${j.kind} ${fmtTime(j.created)}`)));
}

async function load() {
  const ticket = ++state.loads; // an answer overtaken by a newer request is dropped
  const index = state.offset / LIMIT;
  const answer = await get("/scan/results", { ...state.filters, limit: LIMIT, cursor: state.pages[index] });
  if (ticket !== state.loads) return;
  const body = document.querySelector("#results-table tbody");
  const range = document.getElementById("results-range");
  if (!answer.ok) {
    body.replaceChildren();
    range.textContent = `Results unavailable: ${message(answer)}`;
    return;
  }
  const { items, total, next_cursor: next, backend } = answer.body;
  state.pages.length = index + 1;
  if (next) state.pages.push(next);
  document.getElementById("results-backend").textContent = backend ? `store: ${backend}` : "";
  const seen = new Set(items.map((e) => e.scan_request_id));
  body.replaceChildren(...items.map((event) => row(event, state.seen.size > 0 && !state.seen.has(event.scan_request_id))));
  state.seen = seen;
  state.total = total;
  document.getElementById("results-empty").hidden = items.length > 0;
  const last = state.offset + items.length;
  range.textContent = items.length
    ? `${fmtInt(state.offset + 1)}–${fmtInt(last)}${total !== null ? ` of ${fmtInt(total)}` : ""}`
    : "";
  document.getElementById("results-prev").disabled = state.offset === 0;
  document.getElementById("results-next").disabled = !next;
}

function actionText(action) {
  if (!action || action.requested === "nothing" || (!action.applied && action.status === "nothing")) return "–";
  if (action.applied) return `${action.requested}: done`;
  return `${action.requested}: ${action.status || "not applied"}${action.message ? ` (${action.message})` : ""}`;
}

function row(event, fresh) {
  const open = h("button", { type: "button", class: "link", title: event.location }, event.location);
  open.addEventListener("click", () => showDetail(event));
  const job = h("button", { type: "button", class: "link mono", title: `Filter by job ${event.job_id}` }, shortId(event.job_id));
  job.addEventListener("click", () => filterByJob(event.job_id));
  return h("tr", { class: fresh ? "fresh" : "", dataset: { id: event.scan_request_id } },
    h("td", { "data-label": "Time" }, h("time", { datetime: event.timestamp }, fmtTime(event.timestamp))),
    h("td", { "data-label": "Verdict" }, chip(event.verdict, "v")),
    h("td", { class: "path", "data-label": "Location" }, open),
    h("td", { "data-label": "Connector" }, event.connector?.name || "–"),
    h("td", { "data-label": "Job" }, job),
    h("td", { "data-label": "Action" }, actionText(event.action)));
}

function section(title, pairs) {
  const rows = pairs.filter(([, v]) => v !== undefined && v !== null && v !== "");
  if (!rows.length) return null;
  return [h("h3", {}, title), h("dl", {}, ...rows.flatMap(([k, v]) => [h("dt", {}, k), h("dd", {}, String(v))]))];
}

function showDetail(event) {
  const d = event.verdict_details || {};
  const f = event.file_info || {};
  const s = event.scanner || {};
  const a = event.action || {};
  document.getElementById("result-dialog-title").textContent = `${event.verdict}: ${event.location}`;
  document.getElementById("result-detail").replaceChildren(h("div", { class: "detail" },
    section("Verdict", [["verdict", event.verdict], ["description", d.event_description], ["reason", d.reason],
      ["threat type", d.threat_type], ["severity", event.severity]]),
    section("File", [["location", event.location], ["name", event.metainfo], ["type", f.file_type],
      ["size", f.size_in_bytes !== undefined ? `${fmtBytes(f.size_in_bytes)} (${fmtInt(f.size_in_bytes)} bytes)` : null],
      ["SHA-256", f.sha256]]),
    section("Scanner", [["scan guid", s.scan_guid], ["duration", s.duration_us !== undefined ? `${fmtInt(s.duration_us)} µs` : null],
      ["engine version", s.engine_version], ["cached", s.cached ? "yes" : "no"]]),
    section("Action", [["requested", a.requested], ["applied", a.applied ? "yes" : "no"], ["status", a.status], ["message", a.message]]),
    event.error ? section("Error", [["kind", event.error.kind], ["message", event.error.message]]) : null,
    section("Identity", [["scan request", event.scan_request_id], ["job", event.job_id],
      ["connector", `${event.connector?.name || ""} ${event.connector?.uuid || ""}`], ["time", fmtTime(event.timestamp)]]),
    h("details", {}, h("summary", {}, "Event JSON"), h("pre", {}, JSON.stringify(event, null, 2)))));
  document.getElementById("result-dialog").showModal();
}
