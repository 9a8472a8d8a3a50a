// The console's insight pages: the message list, a message's funnel, and the 30-day statistics chart.
// Uses console.js's helpers ($, el, admin, seg, when, fillRows, showError, clearErrors); the charts
// are plain SVG built with the DOM (no library, nothing from another origin). Every series and
// reason is told apart by line style, marker shape or fill pattern and a text label, not by colour.
"use strict";

const SVG_NS = "http://www.w3.org/2000/svg";
const STATS_DAYS = 30;
let messageList = { userId: "", cursor: null, items: [] };

function svg(tag, attrs = {}, ...children) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, String(value));
  for (const child of children) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

const sum = (values) => values.reduce((a, b) => a + b, 0);
const total = (counts) => sum(Object.values(counts || {}));

// ---- Messages: the list --------------------------------------------------------------------------

function outcomeText(summary) {
  const parts = [`${summary.sent} sent`];
  if (summary.delivered !== undefined) parts.push(`${summary.delivered} delivered`);
  if (summary.opened !== undefined) parts.push(`${summary.opened} opened`);
  if (total(summary.failed)) parts.push(`${total(summary.failed)} failed`);
  if (total(summary.skipped)) parts.push(`${total(summary.skipped)} skipped`);
  if (summary.pending) parts.push(`${summary.pending} pending`);
  return parts.join(" · ");
}

function messageRow(m) {
  const to = m.to.groupId !== undefined ? `group ${m.to.groupId}` : m.to.userId;
  const open = el("button", { type: "button", class: "link", "data-message-id": m.messageId }, m.messageId);
  open.addEventListener("click", () => openMessage(m.messageId));
  return el(
    "tr",
    { "data-message-id": m.messageId },
    el("td", {}, when(m.createdAt)),
    el("td", {}, open, m.kind === "call" ? " (call)" : null),
    el("td", {}, to),
    el("td", {}, m.senderId),
    el("td", {}, String(m.recipientCount)),
    el("td", { class: "outcome" }, outcomeText(m.summary)),
  );
}

async function loadMessageList(fresh) {
  if (fresh) messageList = { userId: $("#list-user-id").value.trim(), cursor: null, items: [] };
  const query = new URLSearchParams({ limit: "20" });
  if (messageList.userId) query.set("userId", messageList.userId);
  if (messageList.cursor) query.set("cursor", messageList.cursor);
  const data = await admin("GET", `/messages?${query}`);
  messageList.items.push(...data.items);
  messageList.cursor = data.nextCursor || null;
  fillRows($("#messages-table"), messageList.items.map(messageRow));
  const whose = messageList.userId ? `received by ${messageList.userId}` : "of this app";
  $("#list-title").textContent = messageList.items.length
    ? `${messageList.items.length} message(s) ${whose}, newest first.`
    : messageList.cursor
      ? `None ${whose} among the latest messages looked at: load older ones.`
      : `No messages ${whose} in the last days.`;
  $("#list-title").dataset.loaded = "true";
  show($("#messages-more"), Boolean(messageList.cursor));
}

function listMessages(event) {
  event.preventDefault();
  const form = event.target;
  clearErrors(form);
  delete $("#list-title").dataset.loaded;
  loadMessageList(true).catch((error) => showError(form, error));
}

function openMessage(messageId) {
  $("#report-message-id").value = messageId;
  $("#report-user-id").value = messageList.userId;
  $("#report-form").requestSubmit();
  $("#report-title").scrollIntoView({ block: "start" });
}

// ---- Messages: one message's funnel and reasons --------------------------------------------------

function drawFunnel(data) {
  const s = data.summary || {};
  const recipients = data.userId ? 1 : data.recipientCount;
  const stages = [
    ["recipients", data.userId ? `recipient (${data.userId})` : "recipients", recipients],
    ["pushed", "pushed (devices)", s.sent],
    ["delivered", "delivered", s.delivered],
    ["opened", "opened", s.opened],
  ];
  const widest = Math.max(1, ...stages.map(([, , v]) => v || 0));
  const chart = $("#funnel");
  const rows = stages.map(([key, label, value], i) => {
    const y = 10 + i * 40;
    const known = value !== undefined && value !== null;
    const width = known ? Math.max(2, (value / widest) * 420) : 0;
    const share = known && recipients && i > 0 ? ` (${Math.round((100 * value) / recipients)} % of recipients)` : "";
    return svg(
      "g",
      { "data-stage": key, "data-value": known ? value : "" },
      svg("text", { x: 0, y: y + 20, class: "label" }, label),
      svg("rect", { x: 170, y, width, height: 28, class: `bar stage-${i}` }),
      svg(
        "text",
        { x: 170 + width + 8, y: y + 20, class: "value" },
        known ? `${value}${share}` : "— (no receipts yet)",
      ),
    );
  });
  chart.replaceChildren(svg("title", {}, "Delivery funnel"), ...rows);

  const reasons = [
    ...Object.entries(s.failed || {}).map(([r, n]) => ["failed", r, n]),
    ...Object.entries(s.skipped || {}).map(([r, n]) => ["skipped", r, n]),
  ].sort((a, b) => b[2] - a[2]);
  fillRows(
    $("#reasons-table"),
    reasons.length
      ? reasons.map(([status, reason, n]) =>
          el(
            "tr",
            { "data-status": status, "data-reason": reason },
            el("td", { class: `status-${status}` }, status),
            el("td", {}, el("code", {}, reason)),
            el("td", {}, String(n)),
          ),
        )
      : [el("tr", {}, el("td", { colspan: "3" }, "none: nothing failed or was skipped"))],
  );
}

// ---- Statistics ----------------------------------------------------------------------------------

const SERIES = [
  { key: "sent", label: "sent", dash: "", marker: "circle" },
  { key: "delivered", label: "delivered", dash: "9 5", marker: "square" },
  { key: "opened", label: "opened", dash: "2 4", marker: "triangle" },
];
const PATTERNS = ["solid", "diagonal", "dots", "cross", "horizontal", "vertical"];

function utcDay(date) {
  return date.toISOString().slice(0, 10);
}

function niceMax(value) {
  if (value <= 4) return 4;
  const step = 10 ** Math.floor(Math.log10(value));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * step >= value) return m * step;
  return 10 * step;
}

function markerAt(kind, x, y) {
  if (kind === "square") return svg("rect", { x: x - 4, y: y - 4, width: 8, height: 8, class: "marker hollow" });
  if (kind === "triangle") return svg("polygon", { points: `${x},${y - 5} ${x + 5},${y + 4} ${x - 5},${y + 4}`, class: "marker" });
  return svg("circle", { cx: x, cy: y, r: 4, class: "marker" });
}

/** Axes, grid and day labels shared by both charts; answers the x and y scales. */
function frame(chart, days, maxValue, height) {
  const left = 52, right = 110, top = 14, bottom = 34, width = 960;
  const top0 = niceMax(maxValue);
  const step = (width - left - right) / Math.max(1, days.length - 1);
  const x = (i) => left + i * step;
  const y = (v) => top + (height - top - bottom) * (1 - v / top0);
  const parts = [];
  for (let k = 0; k <= 4; k++) {
    const v = (top0 * k) / 4;
    parts.push(svg("line", { x1: left, x2: width - right, y1: y(v), y2: y(v), class: "grid" }));
    parts.push(svg("text", { x: left - 8, y: y(v) + 4, class: "tick end" }, String(Math.round(v * 100) / 100)));
  }
  days.forEach((d, i) => {
    if (i % 5 === 0 || i === days.length - 1) {
      parts.push(svg("text", { x: x(i), y: height - 12, class: "tick middle" }, d.date.slice(5)));
    }
  });
  chart.replaceChildren(...parts);
  return { x, y, step, bottom: y(0) };
}

function drawStats(days) {
  const chart = $("#stats-chart");
  const maxValue = Math.max(0, ...days.flatMap((d) => SERIES.map((s) => d[s.key])));
  const { x, y } = frame(chart, days, maxValue, 300);
  for (const s of SERIES) {
    const points = days.map((d, i) => `${x(i)},${y(d[s.key])}`).join(" ");
    const group = svg("g", { class: `series series-${s.key}`, "data-series": s.key });
    group.append(svg("polyline", { points, class: "line", "stroke-dasharray": s.dash || "none" }));
    days.forEach((d, i) => {
      const m = markerAt(s.marker, x(i), y(d[s.key]));
      m.setAttribute("data-date", d.date);
      m.setAttribute("data-value", String(d[s.key]));
      m.append(svg("title", {}, `${d.date}: ${d[s.key]} ${s.label}`));
      group.append(m);
    });
    chart.append(group);
  }
  // End labels beside the last points, moved apart when they would overlap (equal values).
  const last = days[days.length - 1];
  const labels = SERIES.map((s) => ({ s, y: y(last[s.key]) + 4 })).sort((a, b) => a.y - b.y);
  labels.forEach((l, i) => {
    if (i > 0 && l.y - labels[i - 1].y < 14) l.y = labels[i - 1].y + 14;
  });
  for (const l of labels) {
    $(`#stats-chart [data-series=${l.s.key}]`).append(
      svg("text", { x: x(days.length - 1) + 10, y: l.y, class: "end-label" }, `${l.s.label} ${last[l.s.key]}`),
    );
  }
  const legend = SERIES.map((s) =>
    el("span", { class: `legend series-${s.key}` }, legendSample(s), ` ${s.label} (${sum(days.map((d) => d[s.key]))})`),
  );
  $("#stats-caption").replaceChildren(`Devices per day, ${days[0].date} to ${days[days.length - 1].date}: `, ...legend);
}

function legendSample(s) {
  return svg(
    "svg",
    { width: 34, height: 12, viewBox: "0 0 34 12", class: `series-${s.key}`, "aria-hidden": "true" },
    svg("line", { x1: 1, x2: 33, y1: 6, y2: 6, class: "line", "stroke-dasharray": s.dash || "none" }),
    markerAt(s.marker, 17, 6),
  );
}

function patternDefs() {
  const defs = svg("defs");
  PATTERNS.forEach((name, i) => {
    const p = svg("pattern", { id: `fail-pat-${i}`, width: 8, height: 8, patternUnits: "userSpaceOnUse", class: `pat pat-${i}` });
    p.append(svg("rect", { width: 8, height: 8, class: "pat-bg" }));
    if (name === "solid") p.append(svg("rect", { width: 8, height: 8, class: "pat-ink" }));
    if (name === "diagonal") p.append(svg("path", { d: "M-2,2 l4,-4 M0,8 l8,-8 M6,10 l4,-4", class: "pat-line" }));
    if (name === "dots") p.append(svg("circle", { cx: 4, cy: 4, r: 1.8, class: "pat-ink" }));
    if (name === "cross") p.append(svg("path", { d: "M0,0 l8,8 M8,0 l-8,8", class: "pat-line" }));
    if (name === "horizontal") p.append(svg("path", { d: "M0,4 h8", class: "pat-line" }));
    if (name === "vertical") p.append(svg("path", { d: "M4,0 v8", class: "pat-line" }));
    defs.append(p);
  });
  return defs;
}

function drawFailures(days) {
  const totals = {};
  for (const d of days) for (const [r, n] of Object.entries(d.failed)) totals[r] = (totals[r] || 0) + n;
  let reasons = Object.keys(totals).sort((a, b) => totals[b] - totals[a]);
  if (reasons.length > PATTERNS.length) reasons = [...reasons.slice(0, PATTERNS.length - 1), "other"];
  const bucket = (r) => (reasons.includes(r) ? r : "other");
  const perDay = days.map((d) => {
    const out = {};
    for (const [r, n] of Object.entries(d.failed)) out[bucket(r)] = (out[bucket(r)] || 0) + n;
    return out;
  });
  const chart = $("#failures-chart");
  const { x, y, step } = frame(chart, days, Math.max(0, ...perDay.map(total)), 230);
  chart.prepend(patternDefs());
  const barWidth = Math.max(4, step * 0.6);
  perDay.forEach((counts, i) => {
    let base = 0;
    reasons.forEach((r, k) => {
      const n = counts[r] || 0;
      if (!n) return;
      const rect = svg("rect", {
        x: x(i) - barWidth / 2,
        y: y(base + n),
        width: barWidth,
        height: y(base) - y(base + n),
        fill: `url(#fail-pat-${k})`,
        class: `fail-bar pat-${k}`,
        "data-reason": r,
        "data-date": days[i].date,
        "data-value": n,
      });
      rect.append(svg("title", {}, `${days[i].date}: ${n} failed, ${r}`));
      chart.append(rect);
      base += n;
    });
  });
  const legend = reasons.length
    ? reasons.map((r, k) =>
        el(
          "span",
          { class: "legend", "data-reason": r },
          svg("svg", { width: 16, height: 12, viewBox: "0 0 16 12", "aria-hidden": "true" }, svg("rect", { width: 16, height: 12, fill: `url(#fail-pat-${k})`, class: "swatch" })),
          ` ${r} (${sum(days.map((d, i) => perDay[i][r] || 0))})`,
        ),
      )
    : ["no failures in these days"];
  $("#failures-caption").replaceChildren("Failed devices per day by reason: ", ...legend);
}

function fillStatsTable(days) {
  fillRows(
    $("#stats-table"),
    [...days].reverse().map((d) =>
      el(
        "tr",
        { "data-date": d.date },
        el("td", {}, d.date),
        el("td", {}, String(d.messages)),
        el("td", {}, String(d.sent)),
        el("td", {}, String(d.delivered)),
        el("td", {}, String(d.opened)),
        el("td", {}, Object.entries(d.failed).map(([r, n]) => `${r} ${n}`).join(", ") || "0"),
        el("td", {}, Object.entries(d.skipped).map(([r, n]) => `${r} ${n}`).join(", ") || "0"),
      ),
    ),
  );
}

async function loadStats() {
  $("#stats-error").textContent = "";
  const to = new Date();
  const from = new Date(to.getTime() - (STATS_DAYS - 1) * 86_400_000);
  try {
    const { days } = await admin("GET", `/stats?from=${utcDay(from)}&to=${utcDay(to)}`);
    drawStats(days);
    drawFailures(days);
    fillStatsTable(days);
    $("#stats-chart").dataset.loaded = "true";
  } catch (error) {
    $("#stats-error").textContent = error.message;
  }
}

// ---- wiring --------------------------------------------------------------------------------------

document.addEventListener("console:page", (event) => {
  if (event.detail === "messages" && session.appId) {
    delete $("#list-title").dataset.loaded;
    loadMessageList(true).catch((error) => showError($("#list-form"), error));
  }
  if (event.detail === "stats" && session.appId) {
    delete $("#stats-chart").dataset.loaded;
    loadStats();
  }
});
document.addEventListener("console:report", (event) => drawFunnel(event.detail));
document.addEventListener("DOMContentLoaded", () => {
  $("#list-form").addEventListener("submit", listMessages);
  $("#user-messages").addEventListener("click", () => {
    $("#list-user-id").value = $("#user-id").value.trim(); // the Users page's user
    openPage("messages");
  });
  $("#messages-more").addEventListener("click", () =>
    loadMessageList(false).catch((error) => showError($("#list-form"), error)),
  );
});
