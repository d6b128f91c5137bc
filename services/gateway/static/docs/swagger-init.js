// Swagger UI for the gateway's OpenAPI document, started from a file so the page's
// Content-Security-Policy needs no inline script.
"use strict";

function csrfToken() {
  const entry = document.cookie.split("; ").find((item) => item.startsWith("vigil_csrf="));
  return entry ? decodeURIComponent(entry.slice("vigil_csrf=".length)) : null;
}

const root = document.getElementById("swagger-ui");
window.ui = SwaggerUIBundle({
  url: root.dataset.openapi,
  dom_id: "#swagger-ui",
  layout: "BaseLayout",
  deepLinking: true,
  showExtensions: true,
  showCommonExtensions: true,
  presets: [SwaggerUIBundle.presets.apis, SwaggerUIBundle.SwaggerUIStandalonePreset],
  // a signed-in browser session writes with its CSRF token, as the dashboard does
  requestInterceptor: (request) => {
    const token = csrfToken();
    if (token && request.method && request.method.toUpperCase() !== "GET") {
      request.headers["X-CSRF-Token"] = token;
    }
    return request;
  },
});
