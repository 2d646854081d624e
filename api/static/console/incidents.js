// linkcall console: 警情 board — record an incident, divert it to a unit, bridge from it (the
// bridge form is filled in), and follow it through accepted, closed and surveyed with its
// timeline, rework flags and overdue diversions (LINKCALL_DIVERT_ACCEPT_MINUTES), live from the
// event stream (incident.* events).
"use strict";

(function () {
  const L = window.linkcall;
  const { api, el, en, label, fmtTime, showMsg, showError, hideMsg } = L;
  const $ = (sel) => document.querySelector(sel);
  const COLUMNS = [
    ["received", "新警情", "received"], ["diverted", "已分流", "diverted, awaiting the unit"],
    ["accepted", "已接收", "accepted by the unit"], ["closed", "已办结", "closed, survey pending"],
    ["surveyed", "已回访", "surveyed"],
  ];
  let incidents = [];
  let selected = null;
  let visible = false;

  document.addEventListener("linkcall:view", (ev) => {
    visible = ev.detail === "incidents";
    if (visible && L.me() && L.me() !== "unit") load();
  });
  document.addEventListener("linkcall:logout", () => {
    incidents = [];
    selected = null;
    $("#board").replaceChildren();
    $("#ib-detail").replaceChildren();
    delete $("#ib-detail").dataset.incident;
    $("#ib-detail").hidden = true;
    $("#ib-overdue").hidden = true;
  });
  let timer = null;
  document.addEventListener("linkcall:event", (ev) => {
    if (!String(ev.detail.type).startsWith("incident.") || !visible) return;
    clearTimeout(timer);
    timer = setTimeout(load, 150);
  });
  $("#ib-refresh").addEventListener("click", load);

  async function load() {
    hideMsg($("#ib-msg"));
    try {
      incidents = await api("/api/v1/incidents?limit=200");
    } catch (err) {
      showError($("#ib-msg"), err);
      return;
    }
    render();
    if (selected) showDetail(selected);
  }

  function render() {
    const board = $("#board");
    board.replaceChildren(...COLUMNS.map(([state, zh, english]) => {
      const items = incidents.filter((i) => i.state === state);
      return el("section", { class: "column", "data-column": state, "aria-label": zh },
        el("h3", {}, zh + "（" + items.length + "）", " ", en(english)),
        ...items.map(card));
    }));
    const overdue = incidents.filter((i) => i.overdue);
    const box = $("#ib-overdue");
    if (overdue.length) {
      const perUnit = new Map();
      for (const i of overdue) perUnit.set(i.unit_code, (perUnit.get(i.unit_code) || 0) + 1);
      box.replaceChildren(el("span", { text: "超时未接收的分流警情 " + overdue.length + " 起：" +
        [...perUnit].map(([u, n]) => u + " " + L.unitName(u) + " " + n + " 起").join("；") }),
        " ", en("diversions not accepted in time, per unit"));
      box.hidden = false;
    } else {
      box.hidden = true;
    }
  }

  function card(i) {
    const b = el("button", { type: "button", class: "incident-card" + (i.overdue ? " overdue" : "") + (i.rework ? " rework" : ""),
      "data-incident": i.id, "data-state": i.state, "aria-pressed": String(selected === i.id) });
    b.append(el("strong", { text: i.type }), " ", el("span", { class: "meta", text: label(L.vocab.CATEGORY, i.category) }));
    b.append(el("span", { class: "summary", text: i.summary }));
    b.append(el("span", { class: "meta", text: fmtTime(i.received_at) + (i.unit_code ? " · " + i.unit_code + " " + L.unitName(i.unit_code) : "") }));
    if (i.overdue) b.append(el("span", { class: "badge overdue-badge", text: "超时未接收 overdue" }));
    if (i.rework) b.append(el("span", { class: "badge rework", text: "需返工 rework" }));
    b.addEventListener("click", () => { selected = i.id; render(); showDetail(i.id); });
    return b;
  }

  // ---------- record ----------
  $("#incident-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const form = $("#incident-form");
    for (const f of form.querySelectorAll(".field")) {
      f.classList.remove("invalid");
      const box = f.querySelector(".field-error");
      if (box) box.replaceChildren();
    }
    hideMsg($("#ib-msg"));
    const v = (id) => $(id).value.trim();
    const body = { reporter_number: v("#if-number"), category: v("#if-category"), type: v("#if-type"), summary: v("#if-summary") };
    let missing = false;
    for (const [key, id] of [["reporter_number", "#if-number"], ["type", "#if-type"], ["summary", "#if-summary"]]) {
      if (body[key]) continue;
      const f = form.querySelector('.field[data-field="' + key + '"]');
      f.classList.add("invalid");
      f.querySelector(".field-error").append(el("div", { text: "必填 (required)" }));
      if (!missing) $(id).focus();
      missing = true;
    }
    if (missing) return;
    try {
      const inc = await api("/api/v1/incidents", { method: "POST", json: body });
      form.reset();
      selected = inc.id;
      showMsg($("#ib-msg"), "ok", "已登记警情，请分流给联动单位。", "recorded " + inc.id);
      await load();
      $("#ib-detail select")?.focus();
    } catch (err) {
      for (const e of (err.problem && err.problem.errors) || []) {
        const f = form.querySelector('.field[data-field="' + CSS.escape(String(e.field).replace(/^body\./, "")) + '"]');
        if (!f) continue;
        f.classList.add("invalid");
        f.querySelector(".field-error").append(el("div", {}, el("span", { text: "输入有误：" }), en(e.message || "")));
      }
      showError($("#ib-msg"), err);
    }
  });

  // ---------- detail: timeline and actions ----------
  async function showDetail(id) {
    const i = incidents.find((x) => x.id === id);
    const box = $("#ib-detail");
    if (!i) { box.hidden = true; return; }
    let timeline = [];
    try {
      timeline = await api("/api/v1/incidents/" + encodeURIComponent(id) + "/timeline");
    } catch (err) {
      showError($("#ib-msg"), err);
    }
    if (selected !== id) return;
    // an incident.* event redraws the pane: what the dispatcher chose or typed in it stays
    const kept = box.dataset.incident === id ? keepInput(box) : null;
    const msg = el("div", { class: "msg", role: "status", hidden: true });
    box.replaceChildren(...[
      el("h3", {}, label(L.vocab.INCIDENT_STATE, i.state) + " · " + i.type, " ", en(i.id)),
      el("p", { text: i.summary }),
      el("p", { class: "meta", text: "报警人 " + i.reporter_number + " · 接警 " + fmtTime(i.received_at) + " · " + i.created_by }),
      i.unit_code ? el("p", { class: "meta", text: "联动单位 " + i.unit_code + " " + L.unitName(i.unit_code) +
        (i.accept_due_at ? " · 应于 " + fmtTime(i.accept_due_at) + " 前接收" : "") }) : null,
      i.overdue ? el("p", { class: "meta warn overdue-note", text: "已超时未接收 (overdue)" }) : null,
      i.rework ? el("p", { class: "meta warn", text: "需返工：" + (i.rework_reason || "") }) : null,
      i.feedback ? el("p", { class: "meta", text: "办结反馈：" + i.feedback }) : null,
      actions(i, msg), msg,
      el("h4", {}, "处置时间线 ", en("timeline")),
      el("ol", { class: "timeline" }, ...timeline.map((t) => el("li", { "data-to": t.to_state },
        el("strong", { text: label(L.vocab.INCIDENT_STATE, t.to_state) }), " ",
        el("span", { class: "meta", text: fmtTime(t.at) + " · " + t.actor + (t.unit_code ? " · " + t.unit_code : "") }),
        t.note ? el("div", { class: "note", text: t.note }) : null))),
    ].filter(Boolean));
    box.dataset.incident = id;
    if (kept) restoreInput(box, kept);
    box.hidden = false;
  }

  function keepInput(box) {
    const values = new Map();
    for (const f of box.querySelectorAll("input[id], select[id], textarea[id]")) values.set(f.id, f.value);
    const focused = box.contains(document.activeElement) ? document.activeElement.id : "";
    return { values, focused };
  }

  function restoreInput(box, kept) {
    for (const [id, value] of kept.values) {
      const f = document.getElementById(id);
      if (!f || !box.contains(f) || !value) continue;
      if (f.tagName === "SELECT" && ![...f.options].some((o) => o.value === value)) continue;
      f.value = value;
    }
    const again = kept.focused && document.getElementById(kept.focused);
    if (again && box.contains(again)) again.focus();
  }

  function actions(i, msg) {
    const wrap = el("div", { class: "detail-actions" });
    const canDivert = i.state === "received" || i.state === "diverted" ||
      ((i.state === "closed" || i.state === "surveyed") && i.rework);
    if (canDivert) {
      const sid = "ib-unit-" + i.id;
      const select = el("select", { id: sid });
      select.append(el("option", { value: "", text: "（选择联动单位 / choose a unit）" }));
      for (const u of L.units()) select.append(el("option", { value: u.code, text: u.code + " " + u.name }));
      const note = el("input", { id: sid + "-note", maxLength: 2000, placeholder: "分流说明（可选）" });
      const go = el("button", { type: "button", class: "primary small-primary",
        text: i.state === "received" ? "分流" : "重新分流", title: "divert to the chosen unit" });
      go.addEventListener("click", async () => {
        if (!select.value) { showMsg(msg, "error", "请选择联动单位。", "choose a unit"); select.focus(); return; }
        go.disabled = true;
        try {
          await api("/api/v1/incidents/" + encodeURIComponent(i.id) + "/divert", { method: "POST",
            json: { unit_code: select.value, note: note.value.trim() || null } });
          await load();
        } catch (err) { showError(msg, err); go.disabled = false; }
      });
      wrap.append(el("div", { class: "row" }, el("label", { htmlFor: sid }, "分流给 ", en("divert to")), select,
        el("label", { htmlFor: sid + "-note", class: "sr" }, "说明"), note, go));
    }
    if (i.unit_code && (i.state === "diverted" || i.state === "accepted")) {
      const bridge = el("button", { type: "button", text: "发起三方通话", title: "bridge the reporter, your seat and the unit" });
      bridge.addEventListener("click", () => bridgeFrom(i));
      wrap.append(bridge);
    }
    if (i.state === "received" && i.category === "police") {
      const fid = "ib-close-" + i.id;
      const text = el("input", { id: fid, maxLength: 4000, placeholder: "处置结果" });
      const close = el("button", { type: "button", text: "直接办结", title: "close a police matter without diverting" });
      close.addEventListener("click", async () => {
        if (!text.value.trim()) { showMsg(msg, "error", "请填写处置结果。", "feedback is required"); text.focus(); return; }
        try {
          await api("/api/v1/incidents/" + encodeURIComponent(i.id) + "/close", { method: "POST", json: { feedback: text.value.trim() } });
          await load();
        } catch (err) { showError(msg, err); }
      });
      wrap.append(el("div", { class: "row" }, el("label", { htmlFor: fid }, "办结 ", en("close")), text, close));
    }
    return wrap;
  }

  // The bridge form (console.js) filled with the reporter, the unit and the incident: the
  // dispatcher checks the seat and presses 拨打.
  function bridgeFrom(i) {
    L.showView("bridge");
    const set = (id, value) => {
      const node = $(id);
      node.value = value;
      node.dispatchEvent(new Event("input", { bubbles: true }));
      node.dispatchEvent(new Event("change", { bubbles: true }));
    };
    set("#f-caller", i.reporter_number);
    set("#f-unit", i.unit_code);
    set("#f-incident", i.id);
    ($("#f-dispatcher").value ? $("#bridge-submit") : $("#f-dispatcher")).focus();
  }
})();
