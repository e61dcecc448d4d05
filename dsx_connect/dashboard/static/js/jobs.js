// Jobs panel: every job, filterable and paginated, running ones first, with pause, resume and cancel.
// Event-driven: /subscribe/jobs (SSE) carries each change of any job. The page reads one snapshot
// (GET /scan/jobs) once its stream is open, and one more only after the stream reconnected or the
// server said events were missed (`resync`); it never polls.
import { get, message, post, subscribe } from "./api.js";
import { announce, chip, copyText, fmtBytes, fmtDuration, fmtInt, fmtTime, h, shortId, slug } from "./dom.js";

const PAGE_SIZE = 10;
const SNAPSHOT_LIMIT = 200;
const MAX_KEPT = 1000; // jobs this page holds; past it the oldest finished ones are forgotten
const FINAL = new Set(["completed", "failed", "cancelled"]);
const ACTIVE_ORDER = { running: 0, paused: 1 };
/** What each kind of job is, for people: a full scan, or the rolling job of a connector's change
 * events and single requests (monitor); "single" is the kind such jobs had before monitor jobs. */
export const KIND_LABELS = { full_scan: "full scan", monitor: "monitor", single: "single request" };
/** Full scans the scheduler started (docs/schedules.md); an operator's own scans get no extra chip. */
const TRIGGER_LABELS = { schedule: "scheduled", scanner_change: "scanner changed" };

const jobs = new Map(); // job id -> latest job view
const cards = new Map(); // job id -> card refs (built when first shown)
const view = { page: 0, status: "", kind: "", text: "" };

export function initJobs() {
  buildToolbar();
  let opened = false;
  let interrupted = false;
  // The stream is slow to open: show the jobs anyway (and read them again once it is open, since
  // changes in between were not streamed to this page).
  const slow = setTimeout(() => snapshot(), 3000);
  subscribe(
    "/subscribe/jobs",
    { job_summary: (job) => showJob(job), resync: () => snapshot() },
    {
      open: () => {
        clearTimeout(slow);
        if (!opened || interrupted) snapshot(); // the first load, or back after a reconnect
        opened = true;
        interrupted = false;
      },
      error: () => {
        interrupted = opened;
      },
    },
  );
}

/** One read of the current jobs: the active ones and the newest others. */
async function snapshot() {
  const [active, recent] = await Promise.all([
    get("/scan/jobs", { status: ["running", "paused"], limit: SNAPSHOT_LIMIT }),
    get("/scan/jobs", { limit: SNAPSHOT_LIMIT }),
  ]);
  for (const answer of [recent, active]) {
    for (const job of answer.body?.items || []) merge(job);
  }
  renderList();
}

/** Keep a job's newest state (``rev`` grows with every change); true if it changed. */
function merge(job) {
  if (!job || !job.job_id) return false;
  const known = jobs.get(job.job_id);
  if (known && (job.rev ?? 0) < (known.rev ?? 0)) return false;
  jobs.set(job.job_id, job);
  if (known && known.status !== job.status && FINAL.has(job.status)) {
    announce(`Job ${shortId(job.job_id)} ${job.status}`);
  }
  if (jobs.size > MAX_KEPT) forgetOldest();
  return true;
}

/** A long session sees many jobs (one per single request): keep the newest, and every active one. */
function forgetOldest() {
  const finished = [...jobs.values()]
    .filter((job) => FINAL.has(job.status))
    .sort((a, b) => String(a.created || "").localeCompare(String(b.created || "")));
  for (const job of finished.slice(0, jobs.size - MAX_KEPT)) {
    jobs.delete(job.job_id);
    cards.get(job.job_id)?.card.remove();
    cards.delete(job.job_id);
  }
}

/** Show (or update) a job. */
export function showJob(job) {
  if (!merge(job)) return;
  const refs = cards.get(job.job_id);
  if (refs && refs.card.isConnected) render(job, refs);
  renderList();
}

/** The card of ``jobId``, to move focus to it (its page is shown first). */
export function jobCard(jobId) {
  const index = visibleJobs().findIndex((job) => job.job_id === jobId);
  if (index >= 0 && Math.floor(index / PAGE_SIZE) !== view.page) {
    view.page = Math.floor(index / PAGE_SIZE);
    renderList();
  }
  return cards.get(jobId)?.card;
}

export function knownJobIds() {
  return [...jobs.keys()];
}

// ---- the list --------------------------------------------------------------------------------

function files(n) {
  return `${fmtInt(n)} file${Number(n) === 1 ? "" : "s"}`;
}

function kindLabel(kind) {
  return KIND_LABELS[kind] || kind || "job";
}

function matches(job) {
  if (view.status && job.status !== view.status) return false;
  if (view.kind && job.kind !== view.kind) return false;
  if (view.text) {
    const haystack = `${job.job_id} ${job.connector_name || ""} ${kindLabel(job.kind)}`.toLowerCase();
    if (!haystack.includes(view.text)) return false;
  }
  return true;
}

/** Running, then paused, then the rest; newest first within each. */
function visibleJobs() {
  const rank = (job) => ACTIVE_ORDER[job.status] ?? 2;
  return [...jobs.values()]
    .filter(matches)
    .sort((a, b) => rank(a) - rank(b) || String(b.created || "").localeCompare(String(a.created || "")));
}

function buildToolbar() {
  const form = document.getElementById("jobs-filters");
  form.addEventListener("input", () => {
    view.status = form.status.value;
    view.kind = form.kind.value;
    view.text = form.text.value.trim().toLowerCase();
    view.page = 0;
    renderList();
  });
  form.addEventListener("submit", (event) => event.preventDefault());
  document.getElementById("jobs-prev").addEventListener("click", () => turn(-1));
  document.getElementById("jobs-next").addEventListener("click", () => turn(1));
}

function turn(step) {
  view.page = Math.max(0, view.page + step);
  renderList();
}

function renderList() {
  const list = document.getElementById("jobs");
  const shown = visibleJobs();
  const pages = Math.max(1, Math.ceil(shown.length / PAGE_SIZE));
  view.page = Math.min(view.page, pages - 1);
  const start = view.page * PAGE_SIZE;
  const page = shown.slice(start, start + PAGE_SIZE);
  const wanted = page.map((job) => {
    let refs = cards.get(job.job_id);
    if (!refs) {
      refs = buildCard(job);
      cards.set(job.job_id, refs);
    }
    if (refs.rendered !== job) render(job, refs);
    return refs.card;
  });
  // move cards into place without rebuilding them (a focused button keeps its focus)
  wanted.forEach((card, index) => {
    if (list.children[index] !== card) list.insertBefore(card, list.children[index] || null);
  });
  while (list.children.length > wanted.length) list.lastElementChild.remove();
  document.getElementById("jobs-empty").hidden = jobs.size > 0;
  document.getElementById("jobs-none-match").hidden = jobs.size === 0 || shown.length > 0;
  const range = document.getElementById("jobs-range");
  range.textContent = shown.length ? `${start + 1}–${start + page.length} of ${shown.length}` : "";
  document.getElementById("jobs-prev").disabled = view.page === 0;
  document.getElementById("jobs-next").disabled = view.page >= pages - 1;
  document.getElementById("jobs-pager").hidden = shown.length <= PAGE_SIZE;
}

// ---- one card --------------------------------------------------------------------------------

/** (total, percent) of a full scan; a job without a known total (monitor, single request) has none. */
function progressOf(job) {
  const total = job.enqueued_total ?? Math.max(job.estimate?.count ?? 0, job.enqueued || 0);
  const done = (job.processed || 0) + (job.skipped || 0);
  let pct = total > 0 ? Math.min(100, Math.floor((done * 100) / total)) : 0;
  if (job.status === "completed") pct = 100;
  else if (!FINAL.has(job.status)) pct = Math.min(pct, 99);
  return { total, done, pct };
}

/** Time left, from the same total as the bar; "–" when it cannot be known (never "0s" midway). */
export function etaText(job, total, done) {
  if (job.status !== "running") return "–";
  const totalKnown = job.enqueued_total !== null && job.enqueued_total !== undefined;
  if (!totalKnown && !job.estimate?.count) return "–"; // still enumerating, no estimate
  const remaining = total - done;
  const rate = Number(job.throughput_fps) || 0;
  if (remaining <= 0 || rate <= 0) return "–";
  const seconds = remaining / rate;
  return seconds < 1 ? "<1s" : fmtDuration(seconds);
}

function elapsedOf(job) {
  const start = Date.parse(job.started || job.created || "");
  const end = Date.parse(job.finished || job.last_update || "");
  return Number.isFinite(start) && Number.isFinite(end) ? Math.max(0, (end - start) / 1000) : null;
}

/** "Scan complete: N files in D" (and how many were malicious), once a job has completed. */
export function completionText(job) {
  const elapsed = elapsedOf(job);
  const took = elapsed === null ? "" : ` in ${elapsed < 1 ? "<1s" : fmtDuration(elapsed)}`;
  const malicious = job.verdicts?.Malicious || 0;
  return `Scan complete: ${files(job.processed)}${took}, ${fmtInt(malicious)} malicious`;
}

function buildCard(job) {
  const id = job.job_id;
  const titleId = `job-title-${id}`;
  const refs = { rendered: null };
  refs.title = h("h3", { id: titleId });
  refs.kind = h("span", { class: "kind" });
  refs.status = h("span");
  refs.code = h("code", {}, id);
  refs.copy = h("button", { type: "button", class: "link", "aria-label": `Copy job id ${id}` }, "Copy");
  refs.copy.addEventListener("click", async () => {
    const copied = await copyText(id, refs.code);
    refs.copy.textContent = copied ? "Copied" : "Selected";
    setTimeout(() => (refs.copy.textContent = "Copy"), 1500);
  });
  refs.started = h("span", { class: "muted" });
  refs.fill = h("span");
  refs.bar = h("div", { class: "bar", role: "progressbar", "aria-valuemin": 0, "aria-valuemax": 100,
    "aria-label": `Progress of job ${shortId(id)}` }, refs.fill);
  refs.text = h("p", { class: "progress-text", "aria-live": "polite" });
  refs.complete = h("p", { class: "complete", hidden: true });
  refs.numbers = h("div", { class: "numbers" });
  refs.verdicts = h("div", { class: "verdicts", "aria-label": "Verdicts" });
  refs.failure = h("p", { class: "note error", hidden: true });
  refs.buttons = {};
  for (const [action, label, cls] of [["pause", "Pause", "secondary"], ["resume", "Resume", "secondary"], ["cancel", "Cancel", "danger"]]) {
    refs.buttons[action] = h("button", { type: "button", class: cls, "data-action": action }, label);
    refs.buttons[action].addEventListener("click", () => control(id, action));
  }
  refs.results = h("button", { type: "button", class: "link" }, "Show results");
  refs.results.addEventListener("click", () =>
    document.dispatchEvent(new CustomEvent("dsx:show-results", { detail: { job: id } })));
  refs.note = h("p", { class: "note muted", role: "status" });
  refs.card = h("article", { class: "job", tabindex: -1, "aria-labelledby": titleId, dataset: { jobId: id, kind: job.kind || "" } },
    h("header", {}, refs.title, h("span", { class: "tags" }, refs.kind, refs.status)),
    h("div", { class: "ident" }, "Job ", refs.code, refs.copy, refs.started),
    refs.bar, refs.text, refs.complete, refs.numbers, refs.verdicts, refs.failure,
    h("div", { class: "controls" }, refs.buttons.pause, refs.buttons.resume, refs.buttons.cancel, refs.results),
    refs.note);
  return refs;
}

function render(job, refs) {
  refs.rendered = job;
  const { total, done, pct } = progressOf(job);
  const fullScan = job.kind === "full_scan" || job.kind === undefined;
  refs.card.dataset.status = job.status;
  refs.card.dataset.kind = job.kind || "";
  refs.title.textContent = `${job.connector_name || "connector"} · ${kindLabel(job.kind)}`;
  const trigger = TRIGGER_LABELS[job.trigger];
  refs.kind.replaceChildren(h("span", { class: `chip k-${slug(job.kind)}` }, kindLabel(job.kind)),
    trigger ? h("span", { class: "chip k-full-scan", title: `started by ${job.trigger}` }, trigger) : "");
  refs.status.replaceChildren(chip(job.status, "s"));
  refs.started.textContent = `started ${fmtTime(job.started)}`;
  // Only a full scan has a total to measure against; the others count what they scanned.
  refs.bar.hidden = !fullScan;
  refs.fill.style.width = `${pct}%`;
  refs.bar.setAttribute("aria-valuenow", pct);
  const totalText = total ? fmtInt(total) : "?";
  refs.bar.setAttribute("aria-valuetext", `${pct}%: ${fmtInt(job.processed)} of ${totalText} files`);
  const estimated = job.enqueued_total === null && total ? " (estimated total)" : "";
  const skipped = job.skipped ? `, ${fmtInt(job.skipped)} skipped` : "";
  refs.text.textContent = fullScan
    ? `${fmtInt(job.processed)} / ${totalText} files scanned${skipped}${estimated} · ${pct}%`
    : `${files(job.processed)} scanned${skipped}`;
  const completed = job.status === "completed";
  refs.complete.hidden = !completed;
  refs.complete.textContent = completed ? completionText(job) : "";
  const numbers = [
    `${job.throughput_fps ?? 0} files/s`,
    `ETA ${fullScan ? etaText(job, total, done) : "–"}`,
    fmtBytes(job.bytes_scanned),
  ];
  if (job.skipped || job.status === "cancelled") numbers.push(`skipped ${fmtInt(job.skipped)}`);
  if (job.status === "cancelled" && job.not_yet_scanned) numbers.push(`${fmtInt(job.not_yet_scanned)} not yet reached (will be skipped)`);
  if (job.errors) numbers.push(`errors ${fmtInt(job.errors)}`);
  refs.numbers.replaceChildren(...numbers.map((text) => h("span", {}, text)));
  const verdicts = Object.entries(job.verdicts || {}).filter(([, n]) => n > 0);
  refs.verdicts.replaceChildren(
    ...verdicts.map(([verdict, n]) => h("span", { class: `chip v-${slug(verdict)}` }, `${verdict} ${fmtInt(n)}`)));
  refs.failure.hidden = !job.failure_reason;
  refs.failure.textContent = job.failure_reason || "";
  refs.buttons.pause.disabled = job.status !== "running";
  refs.buttons.resume.disabled = job.status !== "paused";
  refs.buttons.cancel.disabled = FINAL.has(job.status);
}

async function control(jobId, action) {
  const answer = await post(`/scan/jobs/${encodeURIComponent(jobId)}/${action}`);
  if (answer.body?.job) showJob(answer.body.job);
  const text = answer.ok
    ? answer.body.message
    : `${message(answer)}${answer.body?.job_status ? ` (the job is ${answer.body.job_status})` : ""}`;
  const refs = cards.get(jobId);
  if (refs) refs.note.textContent = text;
  announce(text);
}
