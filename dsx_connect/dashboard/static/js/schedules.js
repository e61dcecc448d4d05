// Scheduled full scans of each connector: the Schedule column of the connectors table and the dialog
// that sets or removes a schedule (PUT/DELETE /connectors/schedule/{uuid}).
import { del, get, message, put } from "./api.js";
import { announce, fmtTime, h } from "./dom.js";

const schedules = new Map(); // connector uuid -> schedule
let changed = () => {};
let chosen = null;

/** Wire the dialog; ``onChange`` re-renders the table when schedules change. */
export function initSchedules(onChange) {
  changed = onChange;
  document.getElementById("schedule-save").addEventListener("click", save);
  document.getElementById("schedule-clear").addEventListener("click", clear);
  loadSchedules();
  setInterval(loadSchedules, 30000); // next and last runs move on
}

export async function loadSchedules() {
  const answer = await get("/connectors/schedules");
  if (!answer.ok) return;
  schedules.clear();
  for (const s of answer.body.schedules) schedules.set(s.connector_uuid, s);
  changed();
}

/** The Schedule cell of a connector's row. */
export function scheduleCell(connector) {
  const s = schedules.get(connector.uuid);
  if (!s) return h("span", { class: "muted" }, "none");
  const parts = [];
  if (s.cron) parts.push(h("span", { class: "mono" }, s.cron), ` (${s.timezone})`);
  if (s.rescan_on_scanner_change) parts.push(parts.length ? " · " : "", "on scanner change");
  if (!s.enabled) parts.push(" · disabled");
  const next = s.next_run ? h("div", { class: "muted", title: s.next_run }, `next ${fmtTime(s.next_run)}`) : "";
  const error = s.last_error ? h("div", { class: "error", title: s.last_error }, "last start failed") : "";
  return h("div", { class: "schedule" }, h("div", {}, ...parts), next, error);
}

export function openScheduleDialog(connector) {
  chosen = connector;
  const s = schedules.get(connector.uuid);
  const form = document.getElementById("schedule-form");
  document.getElementById("schedule-dialog-title").textContent = `Schedule of ${connector.display_name || connector.name}`;
  form.elements.cron.value = s?.cron || "";
  form.elements.timezone.value = s?.timezone || "UTC";
  form.elements.rescan_on_scanner_change.checked = Boolean(s?.rescan_on_scanner_change);
  form.elements.enabled.checked = s ? s.enabled : true;
  document.getElementById("schedule-current").textContent = s?.last_slot
    ? `Last run: ${fmtTime(s.last_slot)}${s.last_job_id ? ` (job ${s.last_job_id.slice(0, 8)})` : ""}` : "";
  document.getElementById("schedule-clear").disabled = !s;
  document.getElementById("schedule-error").hidden = true;
  document.getElementById("schedule-dialog").showModal();
}

function failed(answer, what) {
  const error = document.getElementById("schedule-error");
  error.textContent = `${what}: ${message(answer)}`;
  error.hidden = false;
}

async function save() {
  const form = document.getElementById("schedule-form");
  const cron = form.elements.cron.value.trim();
  const body = {
    cron: cron || null,
    timezone: form.elements.timezone.value.trim() || "UTC",
    rescan_on_scanner_change: form.elements.rescan_on_scanner_change.checked,
    enabled: form.elements.enabled.checked,
  };
  const answer = await put(`/connectors/schedule/${encodeURIComponent(chosen.uuid)}`, body);
  if (!answer.ok) return failed(answer, "The schedule was not saved");
  schedules.set(chosen.uuid, answer.body);
  changed();
  document.getElementById("schedule-dialog").close();
  announce(`Schedule of ${chosen.name} saved`);
}

async function clear() {
  const answer = await del(`/connectors/schedule/${encodeURIComponent(chosen.uuid)}`);
  if (!answer.ok && answer.status !== 404) return failed(answer, "The schedule was not removed");
  schedules.delete(chosen.uuid);
  changed();
  document.getElementById("schedule-dialog").close();
  announce(`Schedule of ${chosen.name} removed`);
}
