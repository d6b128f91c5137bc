// Vigil dashboard: signs a person in, loads from the REST API, refreshes from the live
// event stream. Signing in and the CSRF token are in auth.js (VigilAuth).
"use strict";

const API = VigilAuth.API;
const ROLES = ["viewer", "responder", "admin"]; // each may do what the ones before it may
const state = { tab: "overview", incident: null, shownIncident: null, shownStatus: null, me: null };

// What the signed-in identity's role allows; the server enforces it anyway, the page only
// leaves out what would be refused.
function can(role) {
  return state.me != null && ROLES.indexOf(state.me.role) >= ROLES.indexOf(role);
}

// --- small DOM helpers (text only: nothing from the server becomes HTML) -----------
function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "class") node.className = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value);
  }
  for (const child of children) {
    node.append(child instanceof Node ? child : document.createTextNode(child ?? ""));
  }
  return node;
}
const $ = (id) => document.getElementById(id);
const badge = (text, kind) => el("span", { class: `badge ${kind || text}` }, text);

function when(iso) {
  if (!iso) return "";
  const date = new Date(iso);
  const seconds = Math.round((Date.now() - date.getTime()) / 1000);
  if (seconds < 60) return `${Math.max(seconds, 0)}s ago`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)}m ago`;
  if (seconds < 86400) return `${Math.floor(seconds / 3600)}h ago`;
  return date.toLocaleString();
}
function duration(seconds) {
  if (seconds == null) return "";
  if (seconds < 60) return `${Math.floor(seconds)}s`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)}m`;
  return `${Math.floor(seconds / 3600)}h ${Math.floor((seconds % 3600) / 60)}m`;
}
const labelText = (labels) => Object.entries(labels || {}).map(([k, v]) => `${k}=${v}`).join(", ");

// A refused action stays on screen until the next action; a failed load is cleared by
// the next successful load (background refreshes must not hide what an action said).
let errorFrom = null;
function showError(message, from) {
  const box = $("error");
  box.textContent = message;
  box.hidden = !message;
  errorFrom = message ? from : null;
}

function showNotice(message) {
  $("notice").textContent = message;
  $("notice").hidden = !message;
}

// Aborted when the session ends, so no answer for the last identity lands on the page.
let signedInRequests = new AbortController();
const stopped = () => new DOMException("signed out", "AbortError");

async function api(path, options = {}) {
  const headers = { "Content-Type": "application/json", ...VigilAuth.csrfHeaders(options.method || "GET") };
  const signal = signedInRequests.signal;
  const init = { headers, signal, ...options };
  if (init.body && typeof init.body !== "string") init.body = JSON.stringify(init.body);
  const from = (init.method || "GET") === "GET" ? "load" : "action";
  let response;
  try {
    response = await fetch(API + path, init);
  } catch (error) {
    if (signal.aborted) throw stopped();
    showError(`Could not reach the server: ${error.message}`, from);
    throw error;
  }
  if (signal.aborted) throw stopped();
  if (response.status === 204) {
    if (from === "action" || errorFrom === "load") showError("");
    return null;
  }
  const body = await response.json().catch(() => ({}));
  if (signal.aborted) throw stopped();
  if (response.status === 401) {
    // the session ended (signed out elsewhere, expired, password changed, user removed)
    sessionEnded(SESSION_ENDED);
    throw new Error("signed out");
  }
  if (!response.ok) {
    const message = VigilAuth.refusal(response, body);
    showError(message, from);
    throw new Error(message);
  }
  if (from === "action" || errorFrom === "load") showError("");
  return body;
}

// User actions: a failure is already shown by api(), so it must not escape as an
// unhandled rejection.
const quietly = (promise) => promise.catch(() => {});

// --- overview ----------------------------------------------------------------------
async function loadOverview() {
  const summary = await api("/health/dashboard");
  $("count-firing").textContent = summary.alerts_by_status.firing || 0;
  $("count-acknowledged").textContent = summary.alerts_by_status.acknowledged || 0;
  $("count-critical").textContent = summary.alerts_by_severity.critical || 0;
  const open = Object.values(summary.open_incidents_by_status).reduce((a, b) => a + b, 0);
  $("count-incidents").textContent = open;
  $("count-checks-failing").textContent = summary.checks.filter((c) => c.last_ok === false).length;

  $("services").replaceChildren(
    ...Object.entries(summary.services).map(([name, s]) =>
      el("tr", {},
        el("td", {}, name),
        el("td", {}, badge(s.status)),
        el("td", {}, s.host || ""),
        el("td", {}, s.pid == null ? "" : String(s.pid)),
        el("td", {}, duration(s.uptime_s)),
        el("td", {}, s.last_seen ? when(s.last_seen) : "never")))
  );
  const statuses = Object.entries(summary.open_incidents_by_status);
  $("incident-status").replaceChildren(
    ...(statuses.length
      ? statuses.map(([status, count]) => el("li", {}, badge(status), ` ${count}`))
      : [el("li", { class: "empty" }, "No open incidents.")])
  );
}

function addToFeed(item) {
  const feed = $("feed");
  feed.prepend(
    el("li", {},
      el("time", {}, new Date().toLocaleTimeString()), " ",
      el("strong", {}, item.change), " ",
      el("code", {}, item.id))
  );
  while (feed.children.length > 30) feed.lastChild.remove();
}

// --- alerts ------------------------------------------------------------------------
async function loadAlerts() {
  const params = new URLSearchParams({ limit: "200" });
  if ($("alert-status").value) params.set("status", $("alert-status").value);
  if ($("alert-severity").value) params.set("severity", $("alert-severity").value);
  const alerts = (await api(`/alerts?${params}`)).items;
  $("alerts-empty").hidden = alerts.length > 0;
  $("alert-rows").replaceChildren(
    ...alerts.map((a) => {
      const actions = el("td", { class: "actions" });
      if (!can("responder")) {
        // a viewer gets no buttons the server would refuse
      } else if (a.status === "firing") {
        actions.append(el("button", { onclick: () => quietly(alertAction(a.id, "ack")) }, "Acknowledge"));
      }
      if (can("responder") && a.status !== "resolved") {
        actions.append(el("button", { onclick: () => quietly(alertAction(a.id, "resolve")) }, "Resolve"));
      }
      return el("tr", { "data-alert": a.id },
        el("td", {}, badge(a.severity)),
        el("td", {}, a.rule),
        el("td", {}, el("code", {}, a.metric)),
        el("td", { class: "labels" }, labelText(a.labels)),
        el("td", {}, a.value == null ? "" : `${a.value} / ${a.threshold}`),
        el("td", {}, badge(a.status)),
        el("td", {}, when(a.fired_at)),
        actions);
    })
  );
}

async function alertAction(id, action) {
  await api(`/alerts/${encodeURIComponent(id)}/${action}`, { method: "POST", body: {} });
  await Promise.all([loadAlerts(), loadOverview()]);
}

// --- incidents ---------------------------------------------------------------------
async function loadIncidents() {
  const incidents = (await api("/incidents?limit=200")).items;
  $("incidents-empty").hidden = incidents.length > 0;
  $("incident-rows").replaceChildren(
    ...incidents.map((i) =>
      el("tr", { class: i.id === state.incident ? "selected clickable" : "clickable", onclick: () => quietly(selectIncident(i.id)) },
        el("td", {}, badge(i.severity)),
        el("td", {}, i.title),
        el("td", {}, badge(i.status)),
        el("td", {}, i.assignee || "—"),
        el("td", {}, when(i.opened_at))))
  );
  if (state.incident) await loadIncident(state.incident);
}

async function selectIncident(id) {
  state.incident = id;
  await loadIncidents();
}

async function loadIncident(id) {
  const incident = await api(`/incidents/${encodeURIComponent(id)}`);
  $("incident-detail").hidden = false;
  $("incident-title").textContent = incident.title;
  $("incident-meta").replaceChildren(
    badge(incident.severity), " ", badge(incident.status),
    ` opened ${when(incident.opened_at)} by ${incident.opened_by}`,
    incident.assignee ? `, assigned to ${incident.assignee}` : ""
  );
  // a refresh must not undo a status the user picked but has not submitted yet
  if (state.shownIncident !== incident.id || state.shownStatus !== incident.status) {
    $("incident-status-form").elements.status.value = incident.status;
    state.shownIncident = incident.id;
    state.shownStatus = incident.status;
  }
  $("incident-notes").replaceChildren(
    ...incident.notes.map((n) => el("li", {}, el("strong", {}, n.author), ` ${when(n.time)}: `, n.text))
  );
  $("incident-timeline").replaceChildren(
    ...incident.timeline.map((t) =>
      el("li", {}, el("time", {}, when(t.time)), " ", el("strong", {}, t.type), t.by ? ` by ${t.by}` : "", t.detail ? ` — ${t.detail}` : ""))
  );
}

function onSubmit(id, action) {
  $(id).addEventListener("submit", (event) => {
    event.preventDefault();
    quietly(action(event.target));
  });
}

function wireIncidentForms() {
  onSubmit("open-incident", async (form) => {
    const incident = await api("/incidents", {
      method: "POST",
      body: { title: form.elements.title.value, severity: form.elements.severity.value },
    });
    form.reset();
    // 202 (not yet in the read model) answers with the command result instead
    state.incident = incident.id || incident.aggregate_id || null;
    await loadIncidents();
  });
  onSubmit("incident-status-form", async (form) => {
    await api(`/incidents/${encodeURIComponent(state.incident)}/status`, {
      method: "PUT",
      body: { status: form.elements.status.value, message: form.elements.message.value },
    });
    form.elements.message.value = "";
    await loadIncidents();
  });
  onSubmit("incident-note-form", async (form) => {
    await api(`/incidents/${encodeURIComponent(state.incident)}/notes`, {
      method: "POST",
      body: { text: form.elements.text.value },
    });
    form.reset();
    await loadIncident(state.incident);
  });
}

// --- synthetic checks --------------------------------------------------------------
async function loadSynthetic() {
  const [checks, results] = (await Promise.all([
    api("/synthetic/checks"),
    api("/synthetic/results?limit=50"),
  ])).map((page) => page.items);
  $("checks-empty").hidden = checks.length > 0;
  $("check-rows").replaceChildren(
    ...checks.map((c) =>
      el("tr", {},
        el("td", {}, c.name),
        el("td", { class: "url" }, c.url),
        el("td", {}, c.last_ok == null ? badge("pending") : badge(c.last_ok ? "ok" : "failing")),
        el("td", {}, c.last_status_code == null ? "" : String(c.last_status_code)),
        el("td", {}, c.last_latency_ms == null ? "" : `${Math.round(c.last_latency_ms)} ms`),
        el("td", {}, String(c.consecutive_failures)),
        el("td", {}, when(c.last_run_at)),
        el("td", { class: "actions" },
          can("responder") ? el("button", { onclick: () => quietly(runCheck(c.id)) }, "Run now") : "")))
  );
  $("result-rows").replaceChildren(
    ...results.map((r) =>
      el("tr", {},
        el("td", {}, r.name),
        el("td", {}, badge(r.ok ? "ok" : "failing")),
        el("td", {}, r.status_code == null ? "" : String(r.status_code)),
        el("td", {}, `${Math.round(r.latency_ms)} ms`),
        el("td", {}, r.trigger),
        el("td", {}, when(r.time)),
        el("td", { class: "error-text" }, r.error)))
  );
}

async function runCheck(id) {
  await api(`/synthetic/checks/${encodeURIComponent(id)}/run`, { method: "POST" });
  await loadSynthetic();
}

// --- tabs, refresh and the live stream -----------------------------------------------
const loaders = { overview: loadOverview, alerts: loadAlerts, incidents: loadIncidents, synthetic: loadSynthetic };
const tabsForResource = {
  alert: ["overview", "alerts"],
  incident: ["overview", "incidents"],
  check: ["overview", "synthetic"],
};
const pending = new Set();
let refreshTimer = null;

function refresh(tabs) {
  for (const tab of tabs) pending.add(tab);
  if (refreshTimer) return;
  refreshTimer = setTimeout(() => {
    refreshTimer = null;
    const due = [...pending].filter((tab) => tab === state.tab || tab === "overview");
    pending.clear();
    for (const tab of due) loaders[tab]().catch(() => {});
  }, 250);
}

function showTab(tab) {
  state.tab = tab;
  for (const button of document.querySelectorAll("[data-tab]")) {
    button.setAttribute("aria-selected", String(button.dataset.tab === tab));
  }
  for (const panel of document.querySelectorAll(".panel")) panel.hidden = panel.id !== tab;
  loaders[tab]().catch(() => {});
}

let live = null;

function connectLive() {
  const indicator = $("live");
  const source = new EventSource(`${API}/events`);
  live = source;
  source.onopen = () => {
    indicator.textContent = "live";
    indicator.className = "live online";
    refresh(Object.keys(loaders)); // catch up on anything missed while disconnected
  };
  source.onerror = () => {
    indicator.textContent = "reconnecting";
    indicator.className = "live offline";
    // a refused stream (401) is not retried by the browser: find out whether the session
    // ended, and if not, connect again
    if (source.readyState === EventSource.CLOSED && live === source) {
      live = null;
      setTimeout(() => quietly(checkSession()), 2000);
    }
  };
  source.onmessage = (message) => handleLive(message.data);
  for (const type of ["alert", "incident", "check", "notification", "dead_letter"]) {
    source.addEventListener(type, (message) => handleLive(message.data));
  }
}

function handleLive(data) {
  const item = JSON.parse(data);
  addToFeed(item);
  refresh(tabsForResource[item.resource] || ["overview"]);
}

// --- signing in and out -------------------------------------------------------------
const SESSION_ENDED = "Your session has ended. Sign in again.";
let overviewTimer = null;

// Who this browser is signed in as: null when the server says 401 (then the form shows).
async function whoAmI() {
  const response = await fetch(`${API}/auth/me`);
  if (response.status === 401) return null;
  const body = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(VigilAuth.refusal(response, body));
  return body;
}

async function checkSession() {
  let me;
  try {
    me = await whoAmI();
  } catch (error) {
    showError(`Could not reach the server: ${error.message}`, "load");
    setTimeout(() => quietly(checkSession()), 5000);
    return;
  }
  if (me == null) {
    if (state.me != null) sessionEnded(SESSION_ENDED);
    else showSignIn("");
  } else if (state.me == null) {
    signedIn(me);
  } else if (live == null) {
    connectLive();
  }
}

function showAccount(me) {
  $("account").hidden = me == null;
  if (me == null) return;
  $("account-name").textContent = me.name;
  $("account-role").textContent = me.role;
  $("account-role").className = `badge role-${me.role}`;
  const session = me.kind === "user"; // an API key has no session to end and no password
  $("sign-out").hidden = !session;
  $("change-password").hidden = !session;
}

function signedIn(me) {
  state.me = me;
  document.body.dataset.role = me.role;
  showAccount(me);
  for (const node of document.querySelectorAll("[data-needs]")) node.hidden = !can(node.dataset.needs);
  $("signin").hidden = true;
  $("dashboard").hidden = false;
  document.querySelector(".tabs").hidden = false;
  $("live").hidden = false;
  showTab(state.tab);
  connectLive();
  overviewTimer = setInterval(() => loadOverview().catch(() => {}), 10000); // liveness changes without events
}

// Leave nothing of the last identity's view on the page.
function stopDashboard() {
  signedInRequests.abort();
  signedInRequests = new AbortController();
  if (live) live.close();
  live = null;
  clearInterval(overviewTimer);
  clearTimeout(refreshTimer);
  refreshTimer = null;
  pending.clear();
  state.me = null;
  state.incident = null;
  state.shownIncident = null;
  delete document.body.dataset.role;
  for (const node of $("dashboard").querySelectorAll("tbody, ol, ul")) node.replaceChildren();
  $("incident-detail").hidden = true;
  $("dashboard").hidden = true;
  document.querySelector(".tabs").hidden = true;
  $("live").hidden = true;
  showAccount(null);
  showError("");
  showNotice("");
}

function showSignIn(notice) {
  $("signin").hidden = false;
  $("signin-notice").textContent = notice;
  $("signin-notice").hidden = !notice;
  $("signin-error").hidden = true;
  $("signin-form").elements.name.focus();
}

function sessionEnded(message) {
  if (state.me == null) return;
  stopDashboard();
  showSignIn(message);
}

function wireSignIn() {
  $("signin-form").addEventListener("submit", (event) => {
    event.preventDefault();
    quietly(signIn(event.target));
  });
  $("sign-out").addEventListener("click", () => quietly(signOut()));
  $("change-password").addEventListener("click", () => {
    $("password-form").reset();
    $("password-error").hidden = true;
    $("password-dialog").showModal();
  });
  $("password-cancel").addEventListener("click", () => $("password-dialog").close());
  $("password-form").addEventListener("submit", (event) => {
    event.preventDefault();
    quietly(changePassword(event.target));
  });
}

async function signIn(form) {
  const button = form.querySelector("button[type=submit]");
  button.disabled = true;
  try {
    const answer = await VigilAuth.postJson("/auth/login", {
      name: form.elements.name.value,
      password: form.elements.password.value,
    });
    if (!answer.ok) {
      $("signin-error").textContent = answer.message;
      $("signin-error").hidden = false;
      form.elements.password.select();
      return;
    }
    form.reset();
    $("signin-notice").hidden = true;
    signedIn(answer.body);
  } finally {
    button.disabled = false;
  }
}

async function signOut() {
  stopDashboard(); // nothing more is asked or shown for this session
  const answer = await VigilAuth.postJson("/auth/logout", {});
  if (!answer.ok && answer.status !== 401) {
    showError(`Signing out failed: ${answer.message}`, "action");
    await checkSession(); // still signed in: back to the dashboard
    return;
  }
  showSignIn("You have signed out.");
}

async function changePassword(form) {
  const error = $("password-error");
  const { current, password, again } = form.elements;
  if (password.value !== again.value) {
    error.textContent = "The new passwords differ.";
    error.hidden = false;
    return;
  }
  const answer = await VigilAuth.postJson("/auth/password", {
    current_password: current.value,
    new_password: password.value,
  });
  if (answer.status === 401) {
    $("password-dialog").close();
    sessionEnded(SESSION_ENDED);
    return;
  }
  if (!answer.ok) {
    error.textContent = answer.message;
    error.hidden = false;
    return;
  }
  form.reset();
  $("password-dialog").close();
  showNotice("Password changed. Your other sessions are signed out.");
}

document.addEventListener("DOMContentLoaded", () => {
  for (const button of document.querySelectorAll("[data-tab]")) {
    button.addEventListener("click", () => showTab(button.dataset.tab));
  }
  $("alert-status").addEventListener("change", () => loadAlerts().catch(() => {}));
  $("alert-severity").addEventListener("change", () => loadAlerts().catch(() => {}));
  wireIncidentForms();
  wireSignIn();
  quietly(checkSession());
});
