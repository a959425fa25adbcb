// A browser client of the lambda-jwt-auth API: plain JavaScript, no build step.
// Tokens live in memory only (a page reload signs out); the device token, which only
// exempts this browser from the username's lockout, is kept in localStorage.
"use strict";

const apiBase = (window.LAMBDA_JWT_AUTH || {}).apiBase || "";
const PAGE_SIZE = 5;
const $ = (id) => document.getElementById(id);

// What the page knows of the session. `lastAccessToken` keeps the token of the session
// that just ended, so one can check that the API refuses it.
const state = {
  accessToken: null, refreshToken: null, claims: null,
  pageCursor: null, cursor: null, lastAccessToken: null,
  // The first step's challenge while the second step (a code) is asked for.
  challenge: null,
  // The session's role must use a second factor and it signed in without one: it can
  // only turn two-step sign-in on, or sign out.
  held: false,
  // The admin action waiting for its confirmation.
  pending: null,
};
// Only the token of the session that ended (dead by then) is visible outside: the test
// checks that the API refuses it.
window.lambdaJwtAuth = { get lastAccessToken() { return state.lastAccessToken; } };

function say(text, isError) {
  $("message").textContent = text || "";
  $("message").className = isError ? "error" : "";
}

function claimsOf(token) {
  const payload = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
  return JSON.parse(atob(payload));
}

async function call(method, path, body, token) {
  const headers = {};
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (token) headers["Authorization"] = "Bearer " + token;
  const response = await fetch(apiBase + path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  let json = null;
  try { json = text ? JSON.parse(text) : null; } catch (_) { json = null; }
  return { status: response.status, json };
}

function detail(answer) {
  const json = answer.json || {};
  return json.detail || json.title || json.message || ("HTTP " + answer.status);
}

// A signed-in call whose route answers 401 itself for a wrong code: only the gateway's
// 401 (no `detail`) means the access token is no longer good, and gets `authed`'s refresh.
async function authedWithCode(method, path, body) {
  const answer = await call(method, path, body, state.accessToken);
  if (answer.status === 401 && !(answer.json && answer.json.detail)) {
    return authed(method, path, body);
  }
  return answer;
}

// A signed-in call: on 401 it refreshes once and retries; if that fails too the session
// is over.
async function authed(method, path, body) {
  let answer = await call(method, path, body, state.accessToken);
  if (answer.status === 401 && state.refreshToken) {
    if (await refresh()) {
      answer = await call(method, path, body, state.accessToken);
    }
  }
  if (answer.status === 401) {
    signedOut("Session expired. Please log in again.", true);
  }
  return answer;
}

async function refresh() {
  const answer = await call("POST", "/token/refresh", { refresh_token: state.refreshToken });
  if (answer.status !== 200) return false;
  adopt(answer.json);
  return true;
}

function adopt(tokens) {
  state.accessToken = tokens.access_token;
  state.refreshToken = tokens.refresh_token;
  state.claims = claimsOf(tokens.access_token);
  state.held = tokens.second_factor_enrolment_required === true;
  if (tokens.device_token) {
    localStorage.setItem("device:" + state.claims.username, tokens.device_token);
  }
}

// The key and QR code of an enrolment leave the page once it ends, however it ends.
function forgetEnrolment() {
  $("totp-enrol").hidden = true;
  $("totp-secret").textContent = "";
  $("totp-qr").replaceChildren();
}

function signedOut(text, isError) {
  forgetEnrolment();
  cancelPending();
  if (state.accessToken) state.lastAccessToken = state.accessToken;
  state.accessToken = null;
  state.refreshToken = null;
  state.claims = null;
  $("signed-in").hidden = true;
  $("signed-out").hidden = false;
  say(text, isError);
}

async function showSignedIn() {
  // Recovery codes are shown until the next sign-in, then removed from the page.
  $("recovery").hidden = true;
  $("recovery-codes").replaceChildren();
  $("signed-out").hidden = true;
  $("signed-in").hidden = false;
  $("who").textContent = state.claims.username;
  $("role").textContent = state.claims.role;
  // Held to enrolment, everything but turning two-step sign-in on would answer 403.
  $("held").hidden = !state.held;
  $("full-access").hidden = state.held;
  for (const element of document.querySelectorAll(".full-access-only")) {
    element.hidden = state.held;
  }
  if (state.held) {
    return say("Your role requires two-step sign-in: turn it on below.");
  }
  await loadProfile();
  $("admin").hidden = state.claims.role !== "admin";
  if (state.claims.role === "admin") await loadUsers(null);
}

async function loadProfile() {
  const answer = await authed("GET", "/users/" + encodeURIComponent(state.claims.sub));
  if (answer.status !== 200) return say(detail(answer), true);
  const user = answer.json.user;
  const profile = $("profile");
  profile.replaceChildren();
  for (const [label, value] of [
    ["Username", user.username], ["Name", user.name], ["Role", user.role],
    ["User id", user.id], ["Created", new Date(user.created_at * 1000).toISOString()],
  ]) {
    const dt = document.createElement("dt");
    dt.textContent = label;
    const dd = document.createElement("dd");
    dd.textContent = value;
    profile.append(dt, dd);
  }
}

async function loadUsers(cursor) {
  let path = "/users?limit=" + PAGE_SIZE;
  if (cursor) path += "&cursor=" + encodeURIComponent(cursor);
  const answer = await authed("GET", path);
  if (answer.status !== 200) return say(detail(answer), true);
  state.pageCursor = cursor;
  const rows = $("users");
  rows.replaceChildren();
  const choices = $("role-user");
  choices.replaceChildren();
  // The roles to suggest: the two every deployment has, and those seen on this page.
  const roles = new Set(["admin", "customer"]);
  for (const user of answer.json.users) {
    roles.add(user.role);
    const choice = document.createElement("option");
    choice.value = user.id;
    choice.textContent = user.username;
    choices.append(choice);
  }
  $("role-names").replaceChildren(...[...roles].map((role) => {
    const option = document.createElement("option");
    option.value = role;
    return option;
  }));
  for (const user of answer.json.users) {
    const row = document.createElement("tr");
    row.dataset.username = user.username;
    for (const value of [user.username, user.name, user.role, user.disabled ? "yes" : "no",
                         new Date(user.created_at * 1000).toISOString().slice(0, 10)]) {
      const cell = document.createElement("td");
      cell.textContent = value;   // never innerHTML: names are user input
      row.append(cell);
    }
    rows.append(row);
  }
  state.cursor = answer.json.next_cursor;
  $("next-page").disabled = !state.cursor;
  $("page-info").textContent = answer.json.users.length + " shown" + (state.cursor ? ", more on the next page" : "");
}

$("login-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const username = $("username").value.trim();
  const body = { username, password: $("password").value };
  const device = localStorage.getItem("device:" + username.toLowerCase());
  if (device) body.device_token = device;
  say("Signing in…");
  const answer = await call("POST", "/login", body);
  $("password").value = "";
  if (answer.status !== 200) return say(detail(answer), true);
  if (answer.json.mfa_required) {
    state.challenge = answer.json.challenge;
    $("login-form").hidden = true;
    $("mfa-form").hidden = false;
    $("mfa-code").focus();
    return say("Enter the code your authenticator app shows, or a recovery code.");
  }
  adopt(answer.json);
  say("");
  await showSignedIn();
});

function startSignInAgain(text, isError) {
  state.challenge = null;
  $("mfa-form").hidden = true;
  $("login-form").hidden = false;
  say(text, isError);
}

$("mfa-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const typed = $("mfa-code").value.replace(/\s/g, "");
  const body = { challenge: state.challenge };
  // Six digits are a code; anything else can only be a recovery code.
  if (/^[0-9]{6}$/.test(typed)) body.code = typed; else body.recovery_code = typed;
  const answer = await call("POST", "/login/mfa", body);
  $("mfa-code").value = "";
  if (answer.status !== 200) {
    // A challenge that is used or expired cannot be tried again: back to the password.
    if (answer.status === 401 && /challenge/.test(detail(answer))) {
      return startSignInAgain(detail(answer), true);
    }
    return say(detail(answer), true);
  }
  startSignInAgain("");
  adopt(answer.json);
  await showSignedIn();
});

$("mfa-cancel").addEventListener("click", () => startSignInAgain(""));

// Signing out goes through `authed`: an expired access token is refreshed first, and the
// page says it worked only when the API said so.
async function signOut(path, done) {
  const answer = await authed("POST", path);
  if (answer.status === 204) return signedOut(done);
  if (answer.status !== 401) say("Not signed out: " + detail(answer), true);
}

$("logout").addEventListener("click", () => signOut("/logout", "Signed out."));
$("logout-all").addEventListener("click", () => signOut("/logout/all", "Signed out on every device."));

$("first-page").addEventListener("click", () => loadUsers(null));
$("next-page").addEventListener("click", () => loadUsers(state.cursor));

$("role-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const choice = $("role-user").selectedOptions[0];
  if (!choice) return;
  const role = $("role-name").value.trim();
  askConfirmation("Give " + choice.textContent + " the role " + role + "? Their sessions end.",
    async () => {
      const answer = await authed("PATCH", "/users/" + encodeURIComponent(choice.value), { role });
      if (answer.status !== 200) return say(detail(answer), true);
      say(answer.json.user.username + " now has the role " + answer.json.user.role + ".");
      $("role-name").value = "";
      await loadUsers(state.pageCursor);
    });
});

// --- The admin console: each action on the chosen user waits for a confirmation. ----------

function chosenUser() {
  const choice = $("role-user").selectedOptions[0];
  return choice ? { id: choice.value, username: choice.textContent } : null;
}

function cancelPending() {
  state.pending = null;
  $("confirm").hidden = true;
  $("confirm-text").textContent = "";
}

// Shows `question` with Confirm and Cancel; Confirm runs `action` (once).
function askConfirmation(question, action) {
  state.pending = action;
  $("confirm-text").textContent = question;
  $("confirm").hidden = false;
  $("confirm-yes").focus();
}

$("confirm-yes").addEventListener("click", async () => {
  const action = state.pending;
  cancelPending();
  if (action) await action();
});

$("confirm-no").addEventListener("click", () => {
  cancelPending();
  say("Nothing was changed.");
});

// One admin action on the chosen user: its request, what to say when it worked, and the
// user list shown again (the API's error, e.g. 409 on oneself, is shown as it is).
function adminAction(question, method, pathOf, body, expected, done) {
  const user = chosenUser();
  if (!user) return say("Choose a user first.", true);
  askConfirmation(question(user.username), async () => {
    const answer = await authed(method, pathOf(user.id), body);
    if (answer.status !== expected) return say(detail(answer), true);
    say(done(user.username));
    await loadUsers(state.pageCursor);
  });
}

const userPath = (id) => "/users/" + encodeURIComponent(id);

$("disable-user").addEventListener("click", () => adminAction(
  (name) => "Disable " + name + "? Their sessions end and they cannot sign in until enabled.",
  "PATCH", userPath, { disabled: true }, 200, (name) => name + " is disabled."));

$("enable-user").addEventListener("click", () => adminAction(
  (name) => "Enable " + name + "?",
  "PATCH", userPath, { disabled: false }, 200, (name) => name + " is enabled."));

$("reset-mfa").addEventListener("click", () => adminAction(
  (name) => "Reset " + name + "'s two-step sign-in? They sign in with the password alone " +
    "until they turn it on again, and every session of theirs ends.",
  "DELETE", (id) => userPath(id) + "/mfa", undefined, 204,
  (name) => name + "'s two-step sign-in is reset; their sessions ended."));

$("delete-user").addEventListener("click", () => adminAction(
  (name) => "Delete " + name + "? This cannot be undone.",
  "DELETE", userPath, undefined, 204, (name) => name + " is deleted."));

$("reset-password-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const newPassword = $("reset-password-value").value;
  $("reset-password-value").value = "";
  adminAction(
    (name) => "Set a new password for " + name + "? Every session of theirs ends.",
    "POST", (id) => userPath(id) + "/password", { new_password: newPassword }, 204,
    (name) => name + "'s password is reset; their sessions ended.");
});

$("create-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const body = {
    username: $("new-username").value.trim(),
    role: $("new-role").value.trim(),
    password: $("new-user-password").value,
  };
  const name = $("new-name").value.trim();
  if (name) body.name = name;
  $("new-user-password").value = "";
  askConfirmation("Create " + body.username + " with the role " + body.role + "?", async () => {
    const answer = await authed("POST", "/users", body);
    if (answer.status !== 201) return say(detail(answer), true);
    $("new-username").value = "";
    $("new-name").value = "";
    say(answer.json.user.username + " is created (" + answer.json.user.role + ").");
    await loadUsers(state.pageCursor);
  });
});

$("totp-start-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const answer = await authed("POST", "/mfa/totp", { password: $("totp-password").value });
  $("totp-password").value = "";
  if (answer.status !== 200) return say(detail(answer), true);
  $("totp-secret").textContent = answer.json.secret;
  // An <img>, not markup in the page: an SVG shown as an image runs nothing.
  const image = document.createElement("img");
  image.alt = "QR code of the key";
  image.src = "data:image/svg+xml;base64," + btoa(answer.json.qr_code_svg);
  $("totp-qr").replaceChildren(image);
  $("totp-enrol").hidden = false;
  say("Scan the QR code (or type the key), then enter the first code your app shows.");
});

$("totp-confirm-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const answer = await authedWithCode("POST", "/mfa/totp/confirm",
    { code: $("totp-code").value.replace(/\s/g, "") });
  $("totp-code").value = "";
  if (answer.status !== 200) return say(detail(answer), true);
  const list = $("recovery-codes");
  list.replaceChildren();
  for (const code of answer.json.recovery_codes) {
    const item = document.createElement("li");
    item.textContent = code;
    list.append(item);
  }
  $("recovery").hidden = false;
  // Turning it on ended every session, this one too.
  signedOut("Two-step sign-in is on. Every session was signed out: sign in again, with a code.");
});

$("totp-disable-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const answer = await authedWithCode("POST", "/mfa/totp/disable", {
    password: $("totp-off-password").value, code: $("totp-off-code").value.replace(/\s/g, ""),
  });
  $("totp-off-password").value = "";
  $("totp-off-code").value = "";
  if (answer.status !== 204) return say(detail(answer), true);
  // Turning it off ended every session, this one too.
  signedOut("Two-step sign-in is off. Every session was signed out: sign in again.");
});

$("password-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const answer = await authed("POST", "/password", {
    current_password: $("current-password").value,
    new_password: $("new-password").value,
  });
  $("current-password").value = "";
  $("new-password").value = "";
  if (answer.status !== 200) return say(detail(answer), true);
  adopt(answer.json);
  say("Password changed. Other sessions were signed out.");
});

$("api-base").textContent = "API: " + (apiBase || "(not configured)");
