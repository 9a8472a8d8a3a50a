// The operator console: plain DOM code, no framework, no build step.
//
// Safety rules this file keeps:
// - the operator key and the admin tokens live in the `session` object only (this tab's memory):
//   never in localStorage, sessionStorage, cookies or URLs;
// - every value from the API or the user is put on the page with textContent, never as HTML;
// - requests go to this origin only (the Content-Security-Policy allows nothing else).
"use strict";

const BASE = location.pathname.replace(/\/console\/?$/, ""); // "" locally, "/api" on API Gateway
const TOKEN_TTL_S = 3600;

const session = { operatorKey: null, appId: null, tokens: new Map() }; // appId -> {token, expiresMs}
let currentPage = "apps";
let report = { messageId: null, userId: null, items: [], cursor: null, data: null };

// ---- small helpers -------------------------------------------------------------------------------

const $ = (selector, root = document) => root.querySelector(selector);

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (name === "class") node.className = value;
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value);
  }
  for (const child of children) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : String(child)); // strings become text nodes
  }
  return node;
}

function shortToken(token) {
  return token && token.length > 16 ? `${token.slice(0, 8)}…${token.slice(-6)}` : token || "—";
}

function when(value) {
  if (value === null || value === undefined) return "—";
  const date = typeof value === "number" ? new Date(value) : new Date(String(value));
  return isNaN(date) ? String(value) : date.toISOString().replace("T", " ").replace(/\.\d+Z$/, " UTC");
}

function show(node, visible = true) {
  node.hidden = !visible;
}

function fillRows(table, rows) {
  const body = $("tbody", table);
  body.replaceChildren(...rows);
}

/** Key/value list of every field of an object: future fields show up too. Nested objects are
 *  spread one level ("summary.sent"), lists and deeper values shown as JSON. */
function fillDefinitions(dl, object) {
  const parts = [];
  const add = (key, value) => {
    const text = value !== null && typeof value === "object" ? JSON.stringify(value) : String(value);
    parts.push(el("dt", {}, key), el("dd", { "data-field": key }, text));
  };
  for (const [key, value] of Object.entries(object || {})) {
    if (value !== null && typeof value === "object" && !Array.isArray(value)) {
      for (const [inner, innerValue] of Object.entries(value)) add(`${key}.${inner}`, innerValue);
    } else {
      add(key, value);
    }
  }
  dl.replaceChildren(...parts);
}

// ---- the API -------------------------------------------------------------------------------------

class ApiError extends Error {
  constructor(status, error) {
    super(error.message || `HTTP ${status}`);
    this.status = status;
    this.code = error.code || "Error";
    this.details = error.details || {};
  }
}

async function call(method, path, { body, token } = {}) {
  const headers = { Authorization: `Bearer ${token}` };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const resp = await fetch(BASE + path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    cache: "no-store",
    credentials: "omit",
    referrerPolicy: "no-referrer",
  });
  const text = await resp.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  if (!resp.ok) {
    throw new ApiError(resp.status, (data && data.error) || { message: `HTTP ${resp.status}` });
  }
  return data;
}

const operator = (method, path, body) => call(method, path, { body, token: session.operatorKey });

/** An admin token of the current app, minted with the operator key and reused until near expiry. */
async function adminToken() {
  const appId = session.appId;
  if (!appId) throw new ApiError(400, { message: "pick an app first (Apps page)" });
  const cached = session.tokens.get(appId);
  if (cached && cached.expiresMs - Date.now() > 60_000) return cached.token;
  const issued = await operator("POST", `/v1/apps/${encodeURIComponent(appId)}/tokens`, {
    role: "admin",
    ttlSeconds: TOKEN_TTL_S,
  });
  session.tokens.set(appId, { token: issued.token, expiresMs: Date.parse(issued.expiresAt) });
  return issued.token;
}

async function admin(method, suffix, body) {
  const path = `/v1/apps/${encodeURIComponent(session.appId)}${suffix}`;
  return call(method, path, { body, token: await adminToken() });
}

const seg = encodeURIComponent;

// ---- errors next to their fields -----------------------------------------------------------------

function clearErrors(form) {
  for (const p of form.querySelectorAll("[data-error-for]")) p.textContent = "";
}

/** Field errors (details.errors, or a credential check's code) go next to their field. */
function showError(form, error, codeToField = {}) {
  clearErrors(form);
  const slot = (field) => form.querySelector(`[data-error-for="${CSS.escape(field)}"]`);
  const fields = (error.details && error.details.errors) || [];
  let placed = false;
  for (const item of fields) {
    const target = slot(item.field);
    if (target) {
      target.textContent = item.message;
      placed = true;
    }
  }
  const byCode = codeToField[error.code];
  if (!placed && byCode && slot(byCode)) {
    slot(byCode).textContent = error.message;
    placed = true;
  }
  if (!placed) slot("(form)").textContent = error.message || String(error);
}

// ---- sign in / out, app choice, pages ------------------------------------------------------------

async function signIn(event) {
  event.preventDefault();
  const input = $("#operator-key");
  session.operatorKey = input.value.trim();
  input.value = ""; // the key stays in `session` only
  $("#sign-in-error").textContent = "";
  try {
    await loadApps();
  } catch (error) {
    session.operatorKey = null;
    $("#sign-in-error").textContent =
      error.status === 401 || error.status === 403 ? "That is not the operator key." : error.message;
    return;
  }
  show($("#sign-in"), false);
  show($("#tabs"));
  show($("#session"));
  openPage("apps");
}

function signOut() {
  session.operatorKey = null;
  session.appId = null;
  session.tokens.clear();
  location.reload(); // drops every value this tab held
}

async function loadApps() {
  const { items } = await operator("GET", "/v1/apps");
  const select = $("#app-select");
  select.replaceChildren(...items.map((a) => el("option", { value: a.appId }, `${a.name} (${a.appId})`)));
  if (!items.some((a) => a.appId === session.appId)) session.appId = items.length ? items[0].appId : null;
  select.value = session.appId || "";
  fillRows(
    $("#apps-table"),
    items.map((a) =>
      el(
        "tr",
        { "data-app-id": a.appId },
        el("td", {}, el("code", {}, a.appId)),
        el("td", {}, a.name),
        el("td", {}, when(a.createdAt)),
        el(
          "td",
          {},
          el("button", { type: "button", onclick: () => chooseApp(a.appId, "credentials") }, "Open"),
          " ",
          el("button", { type: "button", class: "secondary", onclick: () => rotateKey(a) }, "Rotate key"),
        ),
      ),
    ),
  );
}

function chooseApp(appId, page) {
  session.appId = appId;
  $("#app-select").value = appId;
  if (page) openPage(page);
}

function openPage(name) {
  currentPage = name;
  for (const button of document.querySelectorAll("#tabs button")) {
    if (button.dataset.page === name) button.setAttribute("aria-current", "page");
    else button.removeAttribute("aria-current");
  }
  for (const page of document.querySelectorAll(".page")) show(page, page.id === `page-${name}`);
  if (name === "credentials") loadCredentials().catch((e) => showError($("#upload-form"), e));
  document.dispatchEvent(new CustomEvent("console:page", { detail: name })); // insight.js, webhook.js
  if (name === "settings") loadSettings().catch((e) => showError($("#settings-form"), e));
}

// ---- Apps ----------------------------------------------------------------------------------------

function revealSecret(title, secret, note) {
  $("#secret-title").textContent = title;
  $("#secret-value").textContent = secret;
  $("#secret-note").textContent = note;
  show($("#secret-box"));
}

async function createApp(event) {
  event.preventDefault();
  const form = event.target;
  clearErrors(form);
  try {
    const created = await operator("POST", "/v1/apps", { name: $("#app-name").value });
    revealSecret(`Secret key of ${created.name} (${created.appId})`, created.secretKey, "");
    form.reset();
    session.appId = created.appId;
    await loadApps();
  } catch (error) {
    showError(form, error);
  }
}

async function rotateKey(app) {
  const ok = confirm(
    `Rotate the signing key of ${app.name} (${app.appId})? Tokens signed with the current key ` +
      "keep working for one hour, then are refused: give the new key to the IM server before then.",
  );
  if (!ok) return;
  try {
    const rotated = await operator("POST", `/v1/apps/${seg(app.appId)}/secret-key/rotate`, {});
    session.tokens.delete(app.appId); // mint the console's next token with the new key
    revealSecret(
      `New secret key of ${app.name} (${app.appId})`,
      rotated.secretKey,
      `Tokens signed with the previous key work until ${when(rotated.previousValidUntil)}.`,
    );
  } catch (error) {
    alert(error.message);
  }
}

async function copySecret() {
  const text = $("#secret-value").textContent;
  try {
    await navigator.clipboard.writeText(text);
    $("#copy-secret").textContent = "Copied";
  } catch {
    const range = document.createRange(); // no clipboard permission: select it for Ctrl+C
    range.selectNodeContents($("#secret-value"));
    getSelection().removeAllRanges();
    getSelection().addRange(range);
  }
}

// ---- Credentials ---------------------------------------------------------------------------------

const CREDENTIAL_CODE_FIELD = {
  WrongPassword: "password",
  NotPkcs12: "file",
  NotBase64: "file",
  IncompleteP12: "file",
  NotPushCertificate: "file",
  MissingBundleId: "file",
  UnsupportedKey: "file",
  Expired: "file",
  NotYetValid: "file",
  UntrustedIssuer: "file",
  NotP8: "file",
  NotP256: "file",
  KeyMismatch: "file",
  EnvironmentMismatch: "environment",
  Conflict: "name",
};
const UPLOAD_FIELD_ALIASES = { p12: "file", p8: "file" }; // body fields shown at the file picker

async function loadCredentials() {
  if (!session.appId) return;
  const { items } = await admin("GET", "/credentials");
  fillRows(
    $("#credentials-table"),
    items.map((c) =>
      el(
        "tr",
        { "data-certificate-id": String(c.certificateId) },
        el("td", { class: "cert-id" }, String(c.certificateId)),
        el("td", {}, c.name),
        el("td", {}, c.type),
        el("td", {}, c.bundleId),
        el("td", {}, c.environment),
        el(
          "td",
          {},
          c.expiresAt ? when(c.expiresAt) : "never (.p8)",
          c.expiresSoon ? el("strong", { class: "expiring" }, " expires soon: upload a new one") : null,
        ),
        el("td", {}, el("button", { type: "button", class: "danger", onclick: () => deleteCredential(c) }, "Delete")),
      ),
    ),
  );
}

async function deleteCredential(c) {
  const ok = confirm(
    `Delete credential ${c.certificateId} (${c.name}, ${c.environment})? Devices registered with it ` +
      "stop receiving pushes until they register with another credential.",
  );
  if (!ok) return;
  try {
    await admin("DELETE", `/credentials/${c.certificateId}`);
  } catch (error) {
    alert(error.message);
  }
  await loadCredentials();
}

function credentialType() {
  return $("#upload-form").querySelector('input[name="type"]:checked').value;
}

function switchCredentialType() {
  const p8 = credentialType() === "p8";
  for (const node of document.querySelectorAll(".p8-only")) show(node, p8);
  for (const node of document.querySelectorAll(".p12-only")) show(node, !p8);
}

function readFile(file, asText) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(asText ? reader.result : String(reader.result).split(",", 2)[1] || "");
    reader.onerror = () => reject(reader.error);
    if (asText) reader.readAsText(file);
    else reader.readAsDataURL(file); // "data:...;base64,<the file>"
  });
}

async function uploadCredential(event) {
  event.preventDefault();
  const form = event.target;
  clearErrors(form);
  $("#upload-result").textContent = "";
  const type = credentialType();
  const file = $("#cred-file").files[0];
  if (!file) {
    showError(form, { details: { errors: [{ field: "file", message: `choose the .${type} file` }] } });
    return;
  }
  const body = { type, name: $("#cred-name").value, environment: $("#cred-environment").value };
  if (type === "p12") {
    body.p12 = await readFile(file, false);
    body.password = $("#cred-password").value;
  } else {
    body.p8 = await readFile(file, true);
    body.keyId = $("#cred-key-id").value;
    body.teamId = $("#cred-team-id").value;
    body.bundleId = $("#cred-bundle-id").value;
  }
  try {
    const created = await admin("POST", "/credentials", body);
    $("#upload-result").textContent =
      `Uploaded: certificate ID ${created.certificateId} (${created.bundleId}, ${created.environment}). ` +
      "The app registers its device tokens with this certificate ID.";
    $("#cred-password").value = "";
    await loadCredentials();
  } catch (error) {
    for (const item of (error.details && error.details.errors) || []) {
      item.field = UPLOAD_FIELD_ALIASES[item.field] || item.field;
    }
    showError(form, error, CREDENTIAL_CODE_FIELD);
  }
}

// ---- Users ---------------------------------------------------------------------------------------

async function lookUpUser(event) {
  event.preventDefault();
  const form = event.target;
  clearErrors(form);
  const user = `/users/${seg($("#user-id").value.trim())}`;
  try {
    const [devices, config, state] = await Promise.all([
      admin("GET", `${user}/devices`),
      admin("GET", `${user}/push-config`),
      admin("GET", `${user}/app-state`),
    ]);
    fillRows(
      $("#devices-table"),
      devices.items.map((d) =>
        el(
          "tr",
          {},
          el("td", { title: d.deviceToken }, el("code", {}, shortToken(d.deviceToken))),
          el("td", {}, d.environment),
          el("td", {}, `${d.certificateId} (${d.bundleId})`),
          el("td", {}, d.pushEnabled ? "yes" : "no"),
          el("td", {}, d.invalidReason || "—"),
          el("td", {}, when(d.registeredAt)),
        ),
      ),
    );
    if (!devices.items.length) fillRows($("#devices-table"), [el("tr", {}, el("td", { colspan: "6" }, "no devices"))]);
    fillDefinitions($("#app-state"), { ...state, updatedAt: when(state.updatedAt) });
    fillDefinitions($("#push-config"), config);
    show($("#user-view"));
  } catch (error) {
    showError(form, error);
  }
}

// ---- Test push -----------------------------------------------------------------------------------

function deliveryRows(items) {
  return items.map((d) =>
    el(
      "tr",
      { "data-status": d.status },
      el("td", {}, d.userId),
      el("td", { title: d.deviceToken || "" }, el("code", {}, shortToken(d.deviceToken))),
      el("td", { class: `status-${d.status}` }, d.status),
      el("td", {}, d.reason || "—"),
      el("td", {}, el("code", {}, d.apnsId || "—")),
    ),
  );
}

async function sendTestPush(event) {
  event.preventDefault();
  const form = event.target;
  clearErrors(form);
  const messageId = `console-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`;
  const to = $("#push-to").value.trim();
  const body = {
    messageId,
    sendTime: Math.floor(Date.now() / 1000),
    sender: { userId: $("#push-sender").value.trim(), nickname: "Console" },
    to: { userId: to },
    elems: [{ type: "text", text: $("#push-text").value }],
  };
  try {
    await admin("POST", "/messages", body);
  } catch (error) {
    showError(form, error);
    return;
  }
  $("#push-message-id").textContent = messageId;
  $("#push-state").textContent = "queued, waiting for the outcome…";
  fillRows($("#push-table"), []);
  show($("#push-outcome"));
  watchOutcome(messageId, to, 0);
}

/** Polls the delivery report (1 s apart, up to a minute) until no recipient is pending. */
async function watchOutcome(messageId, userId, attempt) {
  let data = null;
  try {
    data = await admin("GET", `/messages/${seg(messageId)}/deliveries?userId=${seg(userId)}`);
  } catch (error) {
    if (error.status !== 404) {
      $("#push-state").textContent = error.message;
      return;
    }
  }
  const items = (data && data.items) || [];
  const settled = items.length > 0 && items.every((d) => d.status !== "pending");
  if (items.length) fillRows($("#push-table"), deliveryRows(items));
  if (settled) {
    $("#push-state").textContent = `done: ${items.map((d) => d.status).join(", ")}`;
    $("#push-state").dataset.done = "true";
    $("#report-message-id").value = messageId;
    return;
  }
  if (attempt >= 60) {
    $("#push-state").textContent = "still pending after a minute: look at the Messages page later";
    return;
  }
  $("#push-state").textContent = items.length ? "retrying…" : "fanning out…";
  setTimeout(() => watchOutcome(messageId, userId, attempt + 1), 1000);
}

// ---- Messages ------------------------------------------------------------------------------------

async function showReport(event) {
  event.preventDefault();
  const form = event.target;
  clearErrors(form);
  report = {
    messageId: $("#report-message-id").value.trim(),
    userId: $("#report-user-id").value.trim(),
    items: [],
    cursor: null,
    data: null,
  };
  try {
    await loadReportPage();
    show($("#report-view"));
  } catch (error) {
    show($("#report-view"), false);
    showError(form, error);
  }
}

async function loadReportPage() {
  const query = new URLSearchParams({ limit: "200" });
  if (report.userId) query.set("userId", report.userId);
  if (report.cursor) query.set("cursor", report.cursor);
  const data = await admin("GET", `/messages/${seg(report.messageId)}/deliveries?${query}`);
  report.items.push(...data.items);
  report.cursor = data.nextCursor || null;
  report.data = data;
  const { items, nextCursor, ...rest } = data; // the summary and any other top-level fields
  fillDefinitions($("#report-summary"), rest);
  document.dispatchEvent(new CustomEvent("console:report", { detail: { ...rest, userId: report.userId } }));
  const reasons = [...new Set(report.items.map((d) => d.reason).filter(Boolean))].sort();
  const select = $("#filter-reason");
  const chosen = select.value;
  select.replaceChildren(el("option", { value: "" }, "all"), ...reasons.map((r) => el("option", { value: r }, r)));
  select.value = reasons.includes(chosen) ? chosen : "";
  show($("#report-more"), Boolean(report.cursor));
  renderReport();
}

function renderReport() {
  const status = $("#filter-status").value;
  const reason = $("#filter-reason").value;
  const shown = report.items.filter((d) => (!status || d.status === status) && (!reason || d.reason === reason));
  fillRows($("#report-table"), deliveryRows(shown));
  $("#report-count").textContent = `${shown.length} of ${report.items.length} loaded`;
}

// ---- Settings ------------------------------------------------------------------------------------

let loadedWebhook = null; // the webhook as loaded: sent again only when changed (setting it issues a secret)

function checked(name) {
  return [...document.querySelectorAll(`#settings-form input[name="${name}"]:checked`)].map((i) => i.value);
}

function check(name, values) {
  for (const input of document.querySelectorAll(`#settings-form input[name="${name}"]`)) {
    input.checked = values.includes(input.value);
  }
}

function fillSettings(settings) {
  check("convention", settings.payloadConventions || []);
  $("#settings-lease").value = String(settings.foregroundLeaseSeconds);
  $("#settings-communication").checked = Boolean(settings.communicationNotifications);
  $("#settings-read-sync").value = settings.readSync;
  loadedWebhook = settings.webhook || null;
  $("#settings-webhook-url").value = loadedWebhook ? loadedWebhook.url : "";
  check("webhook-event", loadedWebhook ? loadedWebhook.events : []);
}

async function loadSettings() {
  if (!session.appId) return;
  show($("#webhook-secret-box"), false);
  clearErrors($("#settings-form"));
  $("#settings-result").textContent = "";
  fillSettings(await admin("GET", "/settings"));
}

async function saveSettings(event) {
  event.preventDefault();
  const form = event.target;
  clearErrors(form);
  $("#settings-result").textContent = "";
  const lease = $("#settings-lease").value.trim();
  const body = {
    payloadConventions: checked("convention"),
    foregroundLeaseSeconds: lease === "" ? null : Number(lease),
    communicationNotifications: $("#settings-communication").checked,
    readSync: $("#settings-read-sync").value,
  };
  const url = $("#settings-webhook-url").value.trim();
  const webhook = url ? { url, events: checked("webhook-event") } : null;
  if (JSON.stringify(webhook) !== JSON.stringify(loadedWebhook)) body.webhook = webhook;
  try {
    const saved = await admin("PATCH", "/settings", body);
    fillSettings(saved);
    $("#settings-result").textContent = "Saved. Messages fanned out from now on use these settings.";
    if (saved.webhookSecret) {
      $("#webhook-secret").textContent = saved.webhookSecret;
      show($("#webhook-secret-box"));
    }
  } catch (error) {
    showError(form, error);
  }
}

// ---- wiring --------------------------------------------------------------------------------------

function on(selector, type, handler) {
  $(selector).addEventListener(type, handler);
}

document.addEventListener("DOMContentLoaded", () => {
  on("#sign-in-form", "submit", signIn);
  on("#sign-out", "click", signOut);
  on("#app-select", "change", (e) => chooseApp(e.target.value, currentPage));
  for (const button of document.querySelectorAll("#tabs button")) {
    button.addEventListener("click", () => openPage(button.dataset.page));
  }
  on("#create-app-form", "submit", createApp);
  on("#copy-secret", "click", copySecret);
  for (const radio of document.querySelectorAll('#upload-form input[name="type"]')) {
    radio.addEventListener("change", switchCredentialType);
  }
  on("#upload-form", "submit", uploadCredential);
  on("#user-form", "submit", lookUpUser);
  on("#push-form", "submit", sendTestPush);
  on("#report-form", "submit", showReport);
  on("#report-more", "click", () => loadReportPage().catch((e) => showError($("#report-form"), e)));
  on("#filter-status", "change", renderReport);
  on("#filter-reason", "change", renderReport);
  on("#settings-form", "submit", saveSettings);
  $("#operator-key").focus();
});
