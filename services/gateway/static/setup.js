// The one-time setup page: the token comes in the link's fragment (never sent to a
// server), the first administrator is created with it, and the browser is signed in.
"use strict";

const DASHBOARD = "/monitoring";

function setupToken() {
  return new URLSearchParams(window.location.hash.slice(1)).get("token");
}

function showSetupError(message, closed) {
  const box = document.getElementById("setup-error");
  box.replaceChildren(message);
  if (closed) {
    box.append(" ", Object.assign(document.createElement("a"), { href: DASHBOARD, textContent: "Sign in instead." }));
  }
  box.hidden = !message;
}

async function createAdministrator(form, token) {
  const { name, password, again } = form.elements;
  if (password.value !== again.value) {
    showSetupError("The passwords differ.");
    return;
  }
  const button = form.querySelector("button[type=submit]");
  button.disabled = true;
  try {
    const answer = await VigilAuth.postJson("/auth/setup", {
      token,
      name: name.value,
      password: password.value,
    });
    if (answer.ok) {
      window.location.replace(DASHBOARD); // signed in: the answer set the session cookie
      return;
    }
    showSetupError(answer.message, answer.status === 409);
  } finally {
    button.disabled = false;
  }
}

document.addEventListener("DOMContentLoaded", () => {
  const form = document.getElementById("setup-form");
  const token = setupToken();
  if (!token) {
    document.getElementById("setup-missing").hidden = false;
    for (const field of form.elements) field.disabled = true;
    return;
  }
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    createAdministrator(form, token).catch((error) => showSetupError(error.message));
  });
  form.elements.name.focus();
});
