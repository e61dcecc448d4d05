// Dead letters: what ran out of retries. Coded against GET /dlq/stats, GET /dlq/items,
// POST /dlq/requeue and DELETE /dlq; a core without them (404) gets a clear "not available" state.
import { del, get, message, post } from "./api.js";
import { chip, fmtInt, fmtTime, h, shortId } from "./dom.js";

export async function loadDeadLetters() {
  const box = document.getElementById("dlq");
  const stats = await get("/dlq/stats");
  if (stats.status === 404) {
    box.replaceChildren(h("p", { class: "empty", dataset: { state: "unavailable" } },
      "Dead letters are not available in this core version (GET /dlq/stats answered 404). ",
      "Items that run out of retries are still stored as failed results."));
    return;
  }
  if (!stats.ok) {
    box.replaceChildren(h("p", { class: "error", dataset: { state: "error" } }, `Dead letters unavailable: ${message(stats)}`));
    return;
  }
  const items = await get("/dlq/items", { limit: 50 });
  const letters = items.ok ? items.body.items : [];
  const stages = Object.entries(stats.body.by_stage || {}).map(([stage, n]) => `${stage} ${fmtInt(n)}`).join(", ");
  const requeue = h("button", { type: "button", disabled: !stats.body.count }, "Requeue all");
  requeue.addEventListener("click", () => act(`Requeue ${stats.body.count} dead letters?`, () => post("/dlq/requeue", { all: true })));
  const clear = h("button", { type: "button", class: "danger", disabled: !stats.body.count }, "Clear all");
  clear.addEventListener("click", () => act(`Delete ${stats.body.count} dead letters for good?`, () => del("/dlq", { all: true })));
  box.replaceChildren(
    h("p", { dataset: { state: "available" } }, h("strong", { id: "dlq-count" }, fmtInt(stats.body.count)),
      ` dead letters${stages ? ` (${stages})` : ""}`,
      stats.body.requeued ? ` · ${fmtInt(stats.body.requeued)} requeued, not finished yet` : "",
      stats.body.oldest ? ` · oldest ${fmtTime(stats.body.oldest)}` : ""),
    h("div", { class: "controls" }, requeue, " ", clear),
    letters.length ? table(letters) : h("p", { class: "empty" }, "Nothing ran out of retries."));
}

function table(letters) {
  return h("div", { class: "table-wrap" }, h("table", {},
    h("caption", { class: "sr-only" }, "Dead letters, newest first"),
    h("thead", {}, h("tr", {}, ...["Failed", "Stage", "Location", "Job", "Attempts", "Reason", ""].map((t) => h("th", { scope: "col" }, t)))),
    h("tbody", {}, ...letters.map((letter) => {
      // a requeued letter stays until its attempt ends (stored outcome, or a new failure)
      const again = letter.requeued_until
        ? h("span", { class: "muted", dataset: { state: "requeued" }, title: `sent again if not finished by ${fmtTime(new Date(letter.requeued_until * 1000).toISOString())}` }, "requeued")
        : h("button", { type: "button", class: "secondary", "aria-label": `Requeue ${letter.location}` }, "Requeue");
      if (!letter.requeued_until) again.addEventListener("click", () => act(null, () => post("/dlq/requeue", { ids: [letter.id] })));
      return h("tr", {},
        h("td", {}, fmtTime(letter.failed_at)), h("td", {}, chip(letter.stage, "s")),
        h("td", { class: "path" }, letter.location), h("td", { class: "mono", title: letter.job_id }, shortId(letter.job_id)),
        h("td", {}, String(letter.attempts)), h("td", {}, letter.reason), h("td", {}, again));
    }))));
}

async function act(question, call) {
  if (question && !window.confirm(question)) return;
  const answer = await call();
  if (!answer.ok) window.alert(message(answer));
  loadDeadLetters();
}
