// linkcall console: 值守报表 (supervisor, admin) — per unit for an ISO week: roster reported or
// not, the weekly reminder raised, 查岗 results (checks / passed / failed) and the diversions
// overdue now. Reads only public endpoints: units, rosters/missing, rosters/reminders,
// duty-checks and incidents?overdue=true.
"use strict";

(function () {
  const L = window.linkcall;
  const { api, el, en, showMsg, showError, hideMsg } = L;
  const REMINDER_OUTCOME = {
    pending: "待呼叫", calling: "呼叫中", acknowledged: "已按1确认", not_acknowledged: "未按键",
    no_answer: "无人接听", busy: "占线", failed: "呼叫失败",
  };
  const $ = (sel) => document.querySelector(sel);

  // Monday 00:00 in Beijing of an ISO week, as an ISO string with +08:00; and the next Monday
  function weekBounds(week) {
    const m = /^(\d{4})-W(\d{2})$/.exec(week);
    if (!m) return null;
    const jan4 = new Date(Date.UTC(Number(m[1]), 0, 4));
    const monday = new Date(jan4);
    monday.setUTCDate(jan4.getUTCDate() - ((jan4.getUTCDay() || 7) - 1) + 7 * (Number(m[2]) - 1));
    const next = new Date(monday);
    next.setUTCDate(monday.getUTCDate() + 7);
    const iso = (d) => d.toISOString().slice(0, 10) + "T00:00:00+08:00";
    return [iso(monday), iso(next)];
  }

  document.addEventListener("linkcall:view", (ev) => {
    if (ev.detail === "dutyreport" && !$("#dr-week").value) $("#dr-week").value = L.isoWeek(0);
  });
  document.addEventListener("linkcall:logout", () => {
    $("#dr-table tbody").replaceChildren();
    $("#dr-table").hidden = true;
  });
  $("#dr-this").addEventListener("click", () => { $("#dr-week").value = L.isoWeek(0); $("#dr-form").requestSubmit(); });
  $("#dr-last").addEventListener("click", () => { $("#dr-week").value = L.isoWeek(-1); $("#dr-form").requestSubmit(); });
  $("#dr-problems").addEventListener("change", () => {
    for (const tr of $("#dr-table tbody").children) tr.hidden = $("#dr-problems").checked && tr.dataset.problem !== "true";
  });

  $("#dr-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const msg = $("#dr-msg");
    hideMsg(msg);
    const week = $("#dr-week").value.trim().toUpperCase();
    const bounds = weekBounds(week);
    if (!bounds) { showMsg(msg, "error", "周次格式应为 2026-W49。", "an ISO week like 2026-W49"); $("#dr-week").focus(); return; }
    const q = (p) => new URLSearchParams(p).toString();
    let units, missing, reminders, checks, overdue;
    try {
      [units, missing, reminders, checks, overdue] = await Promise.all([
        api("/api/v1/units"),
        api("/api/v1/rosters/missing?" + q({ week })),
        api("/api/v1/rosters/reminders?" + q({ week })),
        api("/api/v1/duty-checks?" + q({ from: bounds[0], to: bounds[1], limit: "5000" })),
        api("/api/v1/incidents?" + q({ overdue: "true", limit: "1000" })),
      ]);
    } catch (err) {
      showError(msg, err);
      return;
    }
    const missingSet = new Set(missing.units.map((u) => u.code));
    // each unit's reminder call (GET /api/v1/rosters/reminders): its outcome, in Chinese
    const reminded = new Map(reminders.units.map((r) => [r.unit_code, REMINDER_OUTCOME[r.outcome] || r.outcome]));
    const summary = new Map(checks.summary.map((s) => [s.unit_code, s]));
    const late = new Map();
    for (const i of overdue) late.set(i.unit_code, (late.get(i.unit_code) || 0) + 1);
    const rows = units.filter((u) => u.active || summary.has(u.code) || late.has(u.code)).map((u) => {
      const s = summary.get(u.code);
      const isMissing = missingSet.has(u.code);
      const problem = isMissing || (s && s.failed > 0) || late.has(u.code);
      const tr = el("tr", { "data-unit": u.code, "data-problem": String(Boolean(problem)) },
        el("td", { text: u.code + " " + u.name }),
        el("td", { text: u.kind === "township" ? "乡镇" : "联动单位" }),
        el("td", {}, el("span", { class: "badge", "data-state": isMissing ? "failed" : "connected",
          text: isMissing ? "未报备" : u.active ? "已报备" : "已停用" })),
        el("td", { text: reminded.has(u.code) ? "已提醒 · " + reminded.get(u.code) : "—" }),
        el("td", { class: s && s.failed ? "warn-cell" : "", text: s ? s.checks + " 次 · 通过 " + s.passed + " · 未通过 " + s.failed : "未查岗" }),
        el("td", { class: late.has(u.code) ? "warn-cell" : "", text: late.has(u.code) ? late.get(u.code) + " 起" : "—" }));
      tr.hidden = $("#dr-problems").checked && !problem;
      return tr;
    });
    $("#dr-table tbody").replaceChildren(...rows);
    $("#dr-table").hidden = false;
    const failedUnits = checks.summary.filter((s) => s.failed > 0).length;
    showMsg(msg, "info", week + "：未报备 " + missingSet.size + " 个单位，查岗 " + checks.checks.length + " 次（" +
      failedUnits + " 个单位有未通过），超时未接收的分流警情 " + overdue.length + " 起。", "summary of the week");
  });
})();
