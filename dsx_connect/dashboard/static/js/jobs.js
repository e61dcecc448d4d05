// Jobs panel: live progress of full scans, with pause, resume and cancel.
// Active jobs follow /subscribe/job-summary/{id} (at most MAX_STREAMS at once: browsers allow few
// connections per host); the others, and jobs started elsewhere, are refreshed by polling.
import { get, message, post, subscribe } from "./api.js";
import { announce, chip, copyText, fmtBytes, fmtDuration, fmtInt, fmtTime, h, shortId, slug } from "./dom.js";

const MAX_STREAMS = 3;
const MAX_CARDS = 12;
const POLL_MS = 3000;
const FINAL = new Set(["completed", "failed", "cancelled"]);
const entries = new Map(); // job id -> {job, refs, stream}

export async function initJobs() {
  const [active, recent] = await Promise.all([
    get("/scan/jobs", { status: ["running", "paused"], limit: 50 }),
    get("/scan/jobs", { kind: "full_scan", limit: 8 }),
  ]);
  const fullScans = (answer) => (answer.body?.items || []).filter((job) => job.kind === "full_scan");
  for (const job of [...fullScans(recent), ...fullScans(active)]) showJob(job); // not the watcher's jobs of one
  setInterval(poll, POLL_MS);
}

/** Show (or update) a job; newer states only (``rev`` grows with every change). */
export function showJob(job) {
  if (!job || !job.job_id) return;
  let entry = entries.get(job.job_id);
  if (!entry) {
    entry = { job, refs: buildCard(job), stream: null };
    entries.set(job.job_id, entry);
    place(entry);
  } else if ((job.rev ?? 0) < (entry.job.rev ?? 0)) {
    return;
  }
  const before = entry.job.status;
  entry.job = job;
  render(entry);
  if (before !== job.status && FINAL.has(job.status)) announce(`Job ${shortId(job.job_id)} ${job.status}`);
  follow(entry);
}

/** The card of ``jobId``, to move focus to it. */
export function jobCard(jobId) {
  return entries.get(jobId)?.refs.card;
}

export function knownJobIds() {
  return [...entries.keys()];
}

/** Nothing about the job will change: finished, and no item left for a worker to reach. */
function settled(job) {
  return FINAL.has(job.status) && !job.not_yet_scanned;
}

function follow(entry) {
  const final = FINAL.has(entry.job.status);
  if (final && entry.stream) {
    entry.stream.close();
    entry.stream = null;
  }
  const streaming = [...entries.values()].filter((e) => e.stream).length;
  if (!final && !entry.stream && streaming < MAX_STREAMS) {
    entry.stream = subscribe(`/subscribe/job-summary/${encodeURIComponent(entry.job.job_id)}`, {
      job_summary: (job) => showJob(job),
    });
  }
}

async function poll() {
  if (document.hidden) return;
  const answer = await get("/scan/jobs", { status: ["running", "paused"], limit: 50 });
  if (!answer.ok) return;
  const active = new Set();
  for (const job of answer.body.items) {
    active.add(job.job_id);
    if (job.kind === "full_scan" || entries.has(job.job_id)) showJob(job);
  }
  // A cancelled (or failed) job still counts the items workers reach; a recent one is followed here.
  const recent = (job) => !job.finished || Date.now() - new Date(job.finished).getTime() < 10 * 60 * 1000;
  for (const entry of entries.values()) {
    const { job } = entry;
    if (!settled(job) && recent(job) && !active.has(job.job_id) && !entry.stream) {
      const one = await get(`/scan/jobs/${encodeURIComponent(entry.job.job_id)}`);
      if (one.ok) showJob(one.body);
    }
  }
}

function place(entry) {
  const list = document.getElementById("jobs");
  const created = entry.job.created || "";
  const after = [...list.children].find((card) => (card.dataset.created || "") < created);
  list.insertBefore(entry.refs.card, after || null);
  document.getElementById("jobs-empty").hidden = true;
  const finished = [...entries.values()].filter((e) => FINAL.has(e.job.status));
  for (const old of finished.slice(0, Math.max(0, entries.size - MAX_CARDS))) {
    old.refs.card.remove();
    entries.delete(old.job.job_id);
  }
}

function progressOf(job) {
  const total = job.enqueued_total ?? Math.max(job.estimate?.count ?? 0, job.enqueued || 0);
  const done = (job.processed || 0) + (job.skipped || 0);
  let pct = total > 0 ? Math.min(100, Math.floor((done * 100) / total)) : 0;
  if (job.status === "completed") pct = 100;
  else if (!FINAL.has(job.status)) pct = Math.min(pct, 99);
  return { total, pct };
}

function buildCard(job) {
  const id = job.job_id;
  const titleId = `job-title-${id}`;
  const refs = {};
  refs.title = h("h3", { id: titleId });
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
  refs.card = h("article", { class: "job", tabindex: -1, "aria-labelledby": titleId, dataset: { jobId: id, created: job.created || "" } },
    h("header", {}, refs.title, refs.status),
    h("div", { class: "ident" }, "Job ", refs.code, refs.copy, refs.started),
    refs.bar, refs.text, refs.numbers, refs.verdicts, refs.failure,
    h("div", { class: "controls" }, refs.buttons.pause, refs.buttons.resume, refs.buttons.cancel, refs.results),
    refs.note);
  return refs;
}

function render({ job, refs }) {
  const { total, pct } = progressOf(job);
  refs.card.dataset.status = job.status;
  refs.title.textContent = `${job.connector_name || "connector"} · ${job.kind === "full_scan" ? "full scan" : job.kind}`;
  refs.status.replaceChildren(chip(job.status, "s"));
  refs.started.textContent = `started ${fmtTime(job.started)}`;
  refs.fill.style.width = `${pct}%`;
  refs.bar.setAttribute("aria-valuenow", pct);
  const totalText = total ? fmtInt(total) : "?";
  refs.bar.setAttribute("aria-valuetext", `${pct}%: ${fmtInt(job.processed)} of ${totalText} files`);
  const estimated = job.enqueued_total === null && total ? " (estimated total)" : "";
  const skipped = job.skipped ? `, ${fmtInt(job.skipped)} skipped` : "";
  refs.text.textContent = `${fmtInt(job.processed)} / ${totalText} files scanned${skipped}${estimated} · ${pct}%`;
  const numbers = [
    `${job.throughput_fps ?? 0} files/s`,
    `ETA ${job.status === "running" ? fmtDuration(job.eta_s) : "–"}`,
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
  const entry = entries.get(jobId);
  const answer = await post(`/scan/jobs/${encodeURIComponent(jobId)}/${action}`);
  if (answer.body?.job) showJob(answer.body.job);
  const text = answer.ok
    ? answer.body.message
    : `${message(answer)}${answer.body?.job_status ? ` (the job is ${answer.body.job_status})` : ""}`;
  entry.refs.note.textContent = text;
  announce(text);
}
