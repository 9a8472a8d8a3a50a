// The console's webhook page: the app's webhook setting, a test event, and the last deliveries.
// Uses console.js's helpers ($, el, admin, when, fillRows, showError, clearErrors, show).
"use strict";

async function loadWebhook() {
  $("#webhook-error").textContent = "";
  $("#webhook-saved").textContent = "";
  $("#webhook-test-result").textContent = "";
  try {
    const settings = await admin("GET", "/settings");
    fillWebhookForm(settings.webhook);
  } catch (error) {
    showError($("#webhook-form"), error);
  }
  await loadDeliveries();
  $("#webhook-form").dataset.loaded = "true";
}

function fillWebhookForm(webhook) {
  $("#webhook-url").value = (webhook && webhook.url) || "";
  const events = new Set((webhook && webhook.events) || []);
  for (const box of document.querySelectorAll('#webhook-events input[name="event"]')) box.checked = events.has(box.value);
  $("#webhook-form").dataset.configured = webhook ? "true" : "false";
}

async function saveWebhook(event) {
  event.preventDefault();
  const form = event.target;
  clearErrors(form);
  $("#webhook-saved").textContent = "";
  const events = [...document.querySelectorAll('#webhook-events input[name="event"]:checked')].map((b) => b.value);
  await patchWebhook({ url: $("#webhook-url").value.trim(), events }, form);
}

async function removeWebhook() {
  if (!confirm("Remove the webhook? No more events are posted, and its secret is deleted.")) return;
  await patchWebhook(null, $("#webhook-form"));
}

async function patchWebhook(webhook, form) {
  try {
    const answer = await admin("PATCH", "/settings", { webhook });
    fillWebhookForm(answer.webhook);
    $("#webhook-saved").textContent = webhook ? "Saved." : "Removed.";
    if (answer.webhookSecret) {
      $("#webhook-page-secret").textContent = answer.webhookSecret;
      show($("#webhook-page-secret-box"));
    }
  } catch (error) {
    showError(form, error);
  }
}

async function sendTestEvent() {
  const out = $("#webhook-test-result");
  out.textContent = "sending…";
  delete out.dataset.done;
  try {
    const r = await admin("POST", "/settings/webhook/test");
    out.textContent = r.delivered
      ? `delivered: HTTP ${r.status} in ${r.durationMs} ms (event ${r.eventId})`
      : `not delivered: ${r.status ? `HTTP ${r.status}` : r.error || "no answer"} (event ${r.eventId})`;
    out.dataset.outcome = r.delivered ? "delivered" : "failed";
  } catch (error) {
    out.textContent = error.message;
    out.dataset.outcome = "error";
  }
  out.dataset.done = "true";
  await loadDeliveries();
}

async function loadDeliveries() {
  try {
    const { items } = await admin("GET", "/settings/webhook/deliveries");
    fillRows(
      $("#webhook-deliveries"),
      items.length
        ? items.map((d) =>
            el(
              "tr",
              { "data-outcome": d.outcome },
              el("td", {}, when(d.at)),
              el("td", { class: d.delivered ? "status-sent" : "status-failed" }, d.outcome),
              el("td", {}, d.status ? String(d.status) : d.error || "—"),
              el("td", {}, String(d.attempt)),
              el("td", {}, `${d.events} (${(d.types || []).join(", ")})`),
            ),
          )
        : [el("tr", {}, el("td", { colspan: "5" }, "no deliveries yet"))],
    );
  } catch (error) {
    fillRows($("#webhook-deliveries"), []);
    $("#webhook-error").textContent =
      error.status === 404 ? "This server does not report webhook deliveries yet." : error.message;
  }
}

document.addEventListener("console:page", (event) => {
  if (event.detail === "webhook" && session.appId) {
    delete $("#webhook-form").dataset.loaded;
    show($("#webhook-page-secret-box"), false);
    loadWebhook();
  }
});
document.addEventListener("DOMContentLoaded", () => {
  $("#webhook-form").addEventListener("submit", saveWebhook);
  $("#webhook-remove").addEventListener("click", removeWebhook);
  $("#webhook-test").addEventListener("click", sendTestEvent);
});
