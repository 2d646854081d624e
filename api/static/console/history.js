// linkcall console: 通话记录 — search every call the service carried (GET /api/v1/calls with
// number / unit / kind / state / date / incident filters, paged with the X-Next-Cursor header).
"use strict";

(function () {
  const L = window.linkcall;
  const { api, el, en, label, fmtTime, showMsg, showError, hideMsg, nextDay } = L;
  const $ = (sel) => document.querySelector(sel);
  const form = $("#history-form");
  let nextCursor = null;
  let query = "";
  let shown = 0;
  let unitsLoaded = false;

  async function loadUnitOptions() {
    if (unitsLoaded) return;
    try {
      const units = await api("/api/v1/units");
      const select = $("#h-unit");
      for (const u of units) {
        select.append(el("option", { value: u.code, text: u.code + " " + u.name + (u.active ? "" : "（已停用）") }));
      }
      unitsLoaded = true;
    } catch (err) { /* the search still works without the list */ }
  }
  document.addEventListener("linkcall:view", (ev) => { if (ev.detail === "history") loadUnitOptions(); });
  document.addEventListener("linkcall:logout", () => {
    unitsLoaded = false;
    $("#h-unit").replaceChildren(el("option", { value: "", text: "（全部 / any）" }));
    $("#h-table tbody").replaceChildren();
    $("#h-table").hidden = true;
    $("#h-meta").textContent = "";
  });

  function buildQuery() {
    const p = new URLSearchParams();
    const v = (id) => $(id).value.trim();
    if (v("#h-number")) p.set("number", v("#h-number"));
    if (v("#h-unit")) p.set("unit", v("#h-unit"));
    if (v("#h-kind")) p.set("kind", v("#h-kind"));
    if (v("#h-state")) p.set("state", v("#h-state"));
    if (v("#h-incident")) p.set("incident_id", v("#h-incident"));
    // whole days in the county's zone (UTC+8), the end day included
    if (v("#h-from")) p.set("from", v("#h-from") + "T00:00:00+08:00");
    if (v("#h-to")) p.set("to", nextDay(v("#h-to")) + "T00:00:00+08:00");
    p.set("limit", "50");
    return p;
  }

  function row(c) {
    const parties = Object.entries(c.parties || {})
      .map(([r, n]) => label(L.vocab.ROLE, r) + " " + (n || "—")).join("　");
    return el("tr", { "data-call": c.id, "data-state": c.state },
      el("td", { text: fmtTime(c.created_at) }),
      el("td", { text: label(L.vocab.KIND, c.kind) }),
      el("td", {}, el("span", { class: "badge", "data-state": c.state, text: label(L.vocab.CALL_STATE, c.state) })),
      el("td", { text: c.unit_code ? c.unit_code + " " + L.unitName(c.unit_code) : "—" }),
      el("td", { class: "parties", text: parties || "—" }),
      el("td", { text: c.incident_id || "—" }),
      el("td", { text: c.end_reason ? L.reasonText(c.end_reason) : "—" }),
      el("td", {}, en(c.id)));
  }

  async function fetchPage(append) {
    const msg = $("#h-msg");
    hideMsg(msg);
    const field = form.querySelector("#h-number").closest(".field");
    field.classList.remove("invalid");
    field.querySelector(".field-error").replaceChildren();
    const p = new URLSearchParams(query);
    if (append && nextCursor) p.set("cursor", nextCursor);
    let list, resp;
    try {
      resp = await api("/api/v1/calls?" + p.toString(), { raw: true });
      list = await resp.json();
    } catch (err) {
      const numberErr = ((err.problem && err.problem.errors) || []).find((e) => e.field === "number");
      if (numberErr) {
        field.classList.add("invalid");
        field.querySelector(".field-error").append(el("div", {}, el("span", { text: "号码格式有误：" }), en(numberErr.message)));
      }
      showError(msg, err);
      return;
    }
    nextCursor = resp.headers.get("X-Next-Cursor");
    const tbody = $("#h-table tbody");
    if (!append) { tbody.replaceChildren(); shown = 0; }
    tbody.append(...list.map(row));
    shown += list.length;
    $("#h-table").hidden = shown === 0;
    $("#h-more").hidden = !nextCursor;
    $("#h-meta").replaceChildren(
      el("span", { text: shown ? "找到 " + shown + " 条通话" + (nextCursor ? "（还有更多）" : "") : "没有符合条件的通话" }),
      " ", en(shown ? shown + " call(s)" : "no call matches"));
  }

  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    query = buildQuery().toString();
    nextCursor = null;
    fetchPage(false);
  });
  form.addEventListener("reset", () => setTimeout(() => { $("#h-table").hidden = true; $("#h-more").hidden = true; $("#h-meta").textContent = ""; }, 0));
  $("#h-more").addEventListener("click", () => fetchPage(true));
})();
