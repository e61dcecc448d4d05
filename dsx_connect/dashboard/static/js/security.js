// Security: scoped enrollment tokens (mint, list, revoke) and connector identities (reset).
// Coded against POST/GET /auth/enrollment-tokens, DELETE /auth/enrollment-tokens/{id} and
// POST /auth/connectors/{uuid}/reset. A minted token is shown once, here, and never again.
import { del, get, message, post } from "./api.js";
import { announce, h } from "./dom.js";

const when = (seconds) => (seconds ? new Date(seconds * 1000).toLocaleString() : "never");

export async function loadSecurity() {
  const box = document.getElementById("security");
  const tokens = await get("/auth/enrollment-tokens");
  if (!tokens.ok) {
    box.replaceChildren(h("p", { class: "error", dataset: { state: "error" } }, `Enrollment tokens unavailable: ${message(tokens)}`));
    return;
  }
  box.replaceChildren(mintForm(), tokenTable(tokens.body), resetForm());
}

function mintForm() {
  const kind = h("select", { name: "kind", "aria-label": "Bind to" },
    h("option", { value: "connector_name" }, "connector name"), h("option", { value: "connector_uuid" }, "connector uuid"));
  const value = h("input", { name: "value", required: true, maxlength: 128, "aria-label": "Connector name or uuid" });
  const hours = h("input", { name: "hours", type: "number", min: 1, max: 8784, placeholder: "never", "aria-label": "Expires in hours" });
  const label = h("input", { name: "label", maxlength: 200, "aria-label": "Label" });
  const shown = h("p", { id: "minted-token", class: "mono", role: "status" });
  const form = h("form", { id: "mint-token", class: "controls" },
    h("label", { class: "field" }, "Bind to ", kind), " ", h("label", { class: "field" }, "Name or uuid ", value), " ",
    h("label", { class: "field" }, "Expires in (hours) ", hours), " ", h("label", { class: "field" }, "Label ", label), " ",
    h("button", { type: "submit" }, "Mint token"), shown);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const body = { [kind.value]: value.value.trim(), label: label.value || undefined };
    if (hours.value) body.expires_in_s = Number(hours.value) * 3600;
    const answer = await post("/auth/enrollment-tokens", body);
    if (!answer.ok) { window.alert(message(answer)); return; }
    await loadSecurity();
    const again = document.getElementById("minted-token");
    again.replaceChildren("New token (shown once; give it to that connector as DSXCONNECTOR_ENROLLMENT_TOKEN): ",
      h("code", {}, answer.body.token));
    announce("Enrollment token minted");
  });
  return h("section", { "aria-labelledby": "mint-title" }, h("h3", { id: "mint-title" }, "Mint a scoped enrollment token"), form);
}

function tokenTable(tokens) {
  if (!tokens.length) return h("p", { class: "empty", id: "tokens-empty" }, "No scoped enrollment tokens.");
  return h("div", { class: "table-wrap" }, h("table", { id: "tokens-table" },
    h("caption", { class: "sr-only" }, "Scoped enrollment tokens (their values are never shown again)"),
    h("thead", {}, h("tr", {}, ...["Id", "Bound to", "Label", "Created", "Expires", ""].map((t) => h("th", { scope: "col" }, t)))),
    h("tbody", {}, ...tokens.map((t) => {
      const revoke = h("button", { type: "button", class: "danger", "aria-label": `Revoke ${t.id}` }, "Revoke");
      revoke.addEventListener("click", async () => {
        if (!window.confirm(`Revoke ${t.id}? Connectors using it can no longer re-register with it.`)) return;
        const answer = await del(`/auth/enrollment-tokens/${encodeURIComponent(t.id)}`);
        if (!answer.ok) window.alert(message(answer));
        loadSecurity();
      });
      return h("tr", { dataset: { token: t.id } }, h("td", { class: "mono" }, t.id),
        h("td", {}, t.connector_name ? `name ${t.connector_name}` : `uuid ${t.connector_uuid}`),
        h("td", {}, t.label || ""), h("td", {}, when(t.created)), h("td", {}, when(t.expires_at)), h("td", {}, revoke));
    }))));
}

function resetForm() {
  const uuid = h("input", { name: "uuid", required: true, maxlength: 64, "aria-label": "Connector uuid" });
  const form = h("form", { id: "reset-identity", class: "controls" },
    h("label", { class: "field" }, "Connector uuid ", uuid), " ", h("button", { type: "submit", class: "danger" }, "Reset identity"));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (!window.confirm(`Reset ${uuid.value}? Its keys stop working now; its next registration with an enrollment token creates it anew.`)) return;
    const answer = await post(`/auth/connectors/${encodeURIComponent(uuid.value.trim())}/reset`);
    window.alert(answer.ok ? answer.body.message : message(answer));
  });
  return h("section", { "aria-labelledby": "reset-title" }, h("h3", { id: "reset-title" }, "Reset a connector identity"),
    h("p", { class: "muted" }, "For a lost or stolen key pair, or a connector that must enroll again."), form);
}
