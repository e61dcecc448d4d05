// Calls to the core API (same origin). Every helper resolves to {ok, status, body}; nothing throws
// on an HTTP error, so each view decides what an error means for it.
export const API = "/dsx-connect/api/v1";

function url(path, params) {
  const u = new URL(API + path, window.location.origin);
  for (const [name, value] of Object.entries(params || {})) {
    for (const v of [].concat(value)) {
      if (v !== undefined && v !== null && v !== "") u.searchParams.append(name, v);
    }
  }
  return u;
}

async function call(method, path, { params, body } = {}) {
  const init = { method, headers: { Accept: "application/json" } };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(url(path, params), init);
  } catch (err) {
    return { ok: false, status: 0, body: { message: `core unreachable: ${err.message}` } };
  }
  let parsed = null;
  try {
    parsed = await response.json();
  } catch {
    parsed = null;
  }
  if (response.status === 401 && !path.startsWith("/auth/")) {
    document.dispatchEvent(new CustomEvent("dsx:unauthorized")); // the session ended: sign in again
  }
  return { ok: response.ok, status: response.status, body: parsed };
}

export const get = (path, params) => call("GET", path, { params });
export const post = (path, body, params) => call("POST", path, { body, params });
export const put = (path, body, params) => call("PUT", path, { body, params });
export const del = (path, params) => call("DELETE", path, { params });

/** The error text of an answer, for people. */
export function message(answer) {
  const b = answer.body;
  return (b && (b.message || b.detail)) || `HTTP ${answer.status}`;
}

// ---- server-sent event streams ------------------------------------------------------------------
// EventSource reconnects by itself and sends Last-Event-ID; the header badge shows whether every
// open stream is connected.
const streams = new Set();

function showLive() {
  const badge = document.getElementById("live");
  if (!badge) return;
  const states = [...streams].map((s) => s.readyState);
  const state = states.some((s) => s !== EventSource.OPEN) ? "error" : "open";
  badge.dataset.state = states.length ? state : "connecting";
  badge.textContent = state === "open" ? "live" : "reconnecting…";
}

/** Open ``/subscribe/...``; ``handlers`` maps event names to callbacks taking the parsed JSON;
 * ``connection.open`` / ``connection.error`` are called when the stream (re)connects or drops. */
export function subscribe(path, handlers, connection = {}) {
  const source = new EventSource(API + path);
  for (const [name, handle] of Object.entries(handlers)) {
    source.addEventListener(name, (event) => handle(JSON.parse(event.data), event));
  }
  source.addEventListener("open", showLive);
  source.addEventListener("error", showLive);
  if (connection.open) source.addEventListener("open", () => connection.open());
  if (connection.error) source.addEventListener("error", () => connection.error());
  streams.add(source);
  showLive();
  return {
    close() {
      source.close();
      streams.delete(source);
      showLive();
    },
  };
}
