// Small DOM and formatting helpers shared by the views.

/** h("td", {class: "x", title: "y"}, "text", child) -> an element. Strings become text nodes. */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on")) el.addEventListener(name.slice(2), value);
    else if (name === "dataset") Object.assign(el.dataset, value);
    else el.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

/** Read out ``text`` to screen readers (one polite live region for the whole page). */
export function announce(text) {
  const region = document.getElementById("announcer");
  if (region) region.textContent = text;
}

export function slug(text) {
  return String(text || "").toLowerCase().replace(/[^a-z0-9]+/g, "-").replace(/(^-|-$)/g, "");
}

export function chip(text, prefix) {
  return h("span", { class: `chip ${prefix}-${slug(text)}` }, text);
}

export function fmtInt(n) {
  return Number(n || 0).toLocaleString("en-US");
}

export function fmtBytes(n) {
  if (n === null || n === undefined) return "–";
  const units = ["B", "KB", "MB", "GB", "TB"];
  let v = Number(n);
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i += 1;
  }
  return `${v.toFixed(i && v < 10 ? 1 : 0)} ${units[i]}`;
}

export function fmtDuration(seconds) {
  if (seconds === null || seconds === undefined || !Number.isFinite(seconds)) return "–";
  const s = Math.round(seconds);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m ${s % 60}s`;
  return `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m`;
}

export function fmtTime(iso) {
  if (!iso) return "–";
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? iso : d.toLocaleString();
}

export function fmtAgo(iso) {
  if (!iso) return "–";
  const seconds = (Date.now() - new Date(iso).getTime()) / 1000;
  if (!Number.isFinite(seconds)) return iso;
  return seconds < 5 ? "just now" : `${fmtDuration(seconds)} ago`;
}

export function shortId(id) {
  return id ? String(id).slice(0, 8) : "–";
}

/** Copy ``text``; falls back to selecting it where the clipboard API is not allowed. */
export async function copyText(text, fallbackEl) {
  try {
    await navigator.clipboard.writeText(text);
    return true;
  } catch {
    if (fallbackEl) window.getSelection().selectAllChildren(fallbackEl);
    return false;
  }
}

/** A path as text with a line-break opportunity after each separator (/, \\, _, -, .), so a long
 * path wraps between its parts rather than mid-word. */
export function pathText(path) {
  const parts = String(path ?? "").split(/(?<=[/\\_.-])/);
  return parts.flatMap((part, i) => (i < parts.length - 1 ? [part, document.createElement("wbr")] : [part]));
}
