// Boot: tabs (with the URL hash), version badge, sign-in when auth is on, and every panel.
import { get, message, post } from "./api.js";
import { initConnectors, onConnectors } from "./connectors.js";
import { loadDeadLetters } from "./dlq.js";
import { initJobs } from "./jobs.js";
import { filterByJob, initResults, setConnectorOptions, setResultsVisible } from "./results.js";
import { loadSecurity } from "./security.js";
import { initStats, setStatsVisible } from "./stats.js";

const VIEWS = ["scans", "results", "stats", "dlq", "security"];
let dlqTimer = null;

function select(view, { focus = false } = {}) {
  if (!VIEWS.includes(view)) view = "scans";
  for (const name of VIEWS) {
    const tab = document.getElementById(`tab-${name}`);
    const on = name === view;
    tab.setAttribute("aria-selected", String(on));
    tab.tabIndex = on ? 0 : -1;
    document.getElementById(`view-${name}`).hidden = !on;
    if (on && focus) tab.focus();
  }
  if (window.location.hash !== `#${view}`) history.replaceState(null, "", `#${view}`);
  setResultsVisible(view === "results");
  setStatsVisible(view === "stats");
  clearInterval(dlqTimer);
  if (view === "dlq") {
    loadDeadLetters();
    dlqTimer = setInterval(loadDeadLetters, 10000);
  }
  if (view === "security") loadSecurity();
}

function initTabs() {
  const tabs = document.getElementById("tabs");
  tabs.addEventListener("click", (event) => {
    const tab = event.target.closest("[role=tab]");
    if (tab) select(tab.id.replace("tab-", ""));
  });
  tabs.addEventListener("keydown", (event) => {
    const current = VIEWS.indexOf(document.querySelector("[role=tab][aria-selected=true]").id.replace("tab-", ""));
    const next = { ArrowRight: current + 1, ArrowLeft: current - 1, Home: 0, End: VIEWS.length - 1 }[event.key];
    if (next === undefined) return;
    event.preventDefault();
    select(VIEWS[(next + VIEWS.length) % VIEWS.length], { focus: true });
  });
  window.addEventListener("hashchange", () => select(window.location.hash.slice(1)));
  document.addEventListener("dsx:show-results", (event) => {
    select("results");
    filterByJob(event.detail.job);
  });
}

// The badge shows a release's version; a dev build (a checkout, an image built without VERSION) hides it.
async function showVersion() {
  const answer = await get("/version");
  const badge = document.getElementById("version");
  if (!answer.ok || answer.body.dev_build) {
    badge.hidden = true;
    return;
  }
  badge.textContent = `v${answer.body.version}`;
  badge.title = `dsx-connect ${answer.body.version}`;
  badge.hidden = false;
}

function showLogin() {
  const dialog = document.getElementById("login-dialog");
  if (dialog.open) return;
  dialog.addEventListener("cancel", (event) => event.preventDefault()); // nothing works without it
  dialog.showModal();
}

function initLogin() {
  document.getElementById("login-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const answer = await post("/auth/login", { api_key: event.target.api_key.value });
    if (answer.ok) {
      window.location.reload(); // every panel starts again with the session cookie
      return;
    }
    const error = document.getElementById("login-error");
    error.textContent = answer.status === 401 ? "That API key is not valid." : message(answer);
    error.hidden = false;
  });
  document.getElementById("logout").addEventListener("click", async () => {
    await post("/auth/logout");
    window.location.reload();
  });
  document.addEventListener("dsx:unauthorized", showLogin);
}

/** True when the panels may start: auth off, or this browser holds a session. */
async function signedIn() {
  const session = await get("/auth/session");
  if (!session.ok || !session.body.auth_enabled) return true; // a core without auth answers 404
  if (session.body.authenticated) {
    document.getElementById("logout").hidden = false;
    return true;
  }
  showLogin();
  return false;
}

async function boot() {
  initTabs();
  initLogin();
  showVersion();
  if (!(await signedIn())) return;
  initResults();
  onConnectors(setConnectorOptions);
  initConnectors();
  initJobs();
  initStats();
  select(window.location.hash.slice(1) || "scans");
}

boot();
