// Signing in, shared by the dashboard and the setup page: JSON posts that carry the
// session's CSRF token, and the words for a refusal (a 429's Retry-After included).
"use strict";

const VigilAuth = (() => {
  const API = "/api/monitoring";
  const CSRF_COOKIE = "vigil_csrf";

  // The session's CSRF token, which the server set in a cookie this page may read.
  function csrfToken() {
    const prefix = `${CSRF_COOKIE}=`;
    const entry = document.cookie.split("; ").find((item) => item.startsWith(prefix));
    return entry ? decodeURIComponent(entry.slice(prefix.length)) : null;
  }

  function csrfHeaders(method) {
    if (method === "GET" || method === "HEAD") return {};
    const token = csrfToken();
    return token ? { "X-CSRF-Token": token } : {};
  }

  const plural = (count, unit) => `${count} ${unit}${count === 1 ? "" : "s"}`;

  // "8 seconds", "3 minutes", "1 hour": how long a Retry-After asks to wait.
  function waitInWords(seconds) {
    const s = Math.max(1, Math.ceil(Number(seconds) || 1));
    if (s < 60) return plural(s, "second");
    if (s < 3600) return plural(Math.ceil(s / 60), "minute");
    return plural(Math.ceil(s / 3600), "hour");
  }

  // What to tell a person about a refused request.
  function refusal(response, body) {
    if (response.status === 429) {
      const wait = waitInWords(response.headers.get("Retry-After"));
      return `Too many attempts. Try again in ${wait}.`;
    }
    return (body && body.detail) || `${response.status} ${response.statusText}`;
  }

  // POST a JSON body; answers {ok, status, body, message} instead of throwing on a refusal.
  async function postJson(path, body) {
    let response;
    try {
      response = await fetch(API + path, {
        method: "POST",
        headers: { "Content-Type": "application/json", ...csrfHeaders("POST") },
        body: JSON.stringify(body ?? {}),
      });
    } catch (error) {
      return { ok: false, status: 0, body: null, message: `Could not reach the server: ${error.message}` };
    }
    const answer = response.status === 204 ? null : await response.json().catch(() => null);
    return {
      ok: response.ok,
      status: response.status,
      body: answer,
      message: response.ok ? "" : refusal(response, answer),
    };
  }

  return { API, csrfHeaders, waitInWords, refusal, postJson };
})();
