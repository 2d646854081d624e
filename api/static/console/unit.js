// linkcall console: the unit view (本单位值班) for a `unit` token.
// This week's and next week's roster, the roster form (numbers checked as typed with the API's
// dial policy), copy last week, the unit's own sheet (template download, upload), the version
// history, and the incidents diverted to the unit. Only the unit's own endpoints are called;
// every text from the API goes in with textContent.
"use strict";

(function () {
  const L = window.linkcall;
  const { api, el, en, label, fmtTime, isoWeek, showMsg, showError, hideMsg } = L;
  const $ = (sel) => document.querySelector(sel);
  const DAYS = ["一", "二", "三", "四", "五", "六", "日"];

  let me = null;          // { name, role, unit_code }
  let weeks = {};         // week -> latest RosterOut (only the weeks shown)
  let loaded = false;

  const unitPath = () => "/api/v1/units/" + encodeURIComponent(me.unit_code);

  // "2026-W50" -> "12月7日–12月13日" (Monday to Sunday)
  function weekRange(week) {
    const m = /^(\d{4})-W(\d{2})$/.exec(week || "");
    if (!m) return "";
    const jan4 = new Date(Date.UTC(Number(m[1]), 0, 4));
    const monday = new Date(jan4);
    monday.setUTCDate(jan4.getUTCDate() - ((jan4.getUTCDay() || 7) - 1) + 7 * (Number(m[2]) - 1));
    const sunday = new Date(monday);
    sunday.setUTCDate(monday.getUTCDate() + 6);
    const f = (d) => (d.getUTCMonth() + 1) + "月" + d.getUTCDate() + "日";
    return f(monday) + "–" + f(sunday);
  }

  function shiftText(shift) {
    if (!shift) return "全周 (all week)";
    const days = shift.days && shift.days.length
      ? "周" + shift.days.map((d) => DAYS[d - 1]).join("、") : "每天";
    const hours = shift.start && shift.end ? " " + shift.start.slice(0, 5) + "–" + shift.end.slice(0, 5) +
      (shift.end <= shift.start ? "（次日）" : "") : "";
    return days + hours;
  }

  // ---------- sign in / out ----------
  document.addEventListener("linkcall:login", (ev) => {
    me = ev.detail;
    if (me.role !== "unit") return;
    L.showView("unit");
    loadAll();
  });
  document.addEventListener("linkcall:logout", () => {
    me = null;
    weeks = {};
    loaded = false;
    $("#unit-title").textContent = "";
    for (const id of ["#unit-week-this", "#unit-week-next"]) $(id + " .week-body").replaceChildren();
    $("#ui-list").replaceChildren();
    $("#rf-history").replaceChildren();
    $("#unit-banner").hidden = true;
    fillForm(null);
  });

  async function loadAll() {
    if (!me || me.role !== "unit") return;
    const thisWeek = isoWeek(0), nextWeek = isoWeek(1);
    const select = $("#rf-week");
    const keep = select.value;
    select.replaceChildren(
      el("option", { value: nextWeek, text: "下周 " + nextWeek + "（" + weekRange(nextWeek) + "）" }),
      el("option", { value: thisWeek, text: "本周 " + thisWeek + "（" + weekRange(thisWeek) + "）" }));
    if (keep === thisWeek) select.value = thisWeek;
    try {
      const unit = await api(unitPath());
      $("#unit-title").textContent = unit.code + " " + unit.name;
    } catch (err) {
      showError($("#unit-msg"), err);
      return;
    }
    await loadWeeks();
    await loadFormWeek();
    loadIncidents();
    loaded = true;
  }

  // ---------- the two weeks side by side ----------
  async function loadWeeks() {
    const thisWeek = isoWeek(0), nextWeek = isoWeek(1);
    weeks = {};
    try {
      const q = "?week=" + encodeURIComponent(thisWeek) + "&week=" + encodeURIComponent(nextWeek);
      const reported = await api(unitPath() + "/rosters" + q);
      await Promise.all(reported.map(async (w) => {
        weeks[w.week] = await api(unitPath() + "/rosters/" + encodeURIComponent(w.week));
      }));
    } catch (err) {
      showError($("#unit-msg"), err);
      return;
    }
    renderWeek($("#unit-week-this"), thisWeek, weeks[thisWeek]);
    renderWeek($("#unit-week-next"), nextWeek, weeks[nextWeek]);
    const banner = $("#unit-banner");
    if (weeks[nextWeek]) {
      banner.hidden = true;
    } else {
      showMsg(banner, "error", "下周（" + nextWeek + "，" + weekRange(nextWeek) + "）值班表尚未报备，请尽快填写并保存。",
        "Next week's roster has not been reported yet.");
      banner.classList.add("banner");
    }
  }

  function renderWeek(card, week, roster) {
    card.querySelector(".week").textContent = week + "（" + weekRange(week) + "）";
    card.dataset.week = week;
    card.dataset.reported = String(Boolean(roster));
    const body = card.querySelector(".week-body");
    if (!roster) {
      body.replaceChildren(el("p", { class: "meta warn" }, "未报备 ", en("not reported")));
      return;
    }
    const table = el("table", { class: "table" },
      el("thead", {}, el("tr", {}, el("th", { text: "顺序" }), el("th", { text: "身份" }),
        el("th", { text: "姓名" }), el("th", { text: "电话" }), el("th", { text: "班次" }))));
    const tbody = el("tbody");
    tbody.append(el("tr", { "data-role": "leader" }, el("td", { text: "—" }), el("td", { text: "带班领导" }),
      el("td", { text: roster.leader.name }), el("td", { text: roster.leader.phone }), el("td", { text: "" })));
    for (const s of [...roster.staff].sort((a, b) => a.order - b.order)) {
      tbody.append(el("tr", { "data-role": "staff" }, el("td", { text: String(s.order) }),
        el("td", { text: "值班人员" }), el("td", { text: s.name }), el("td", { text: s.phone }),
        el("td", { text: shiftText(s.shift) })));
    }
    table.append(tbody);
    body.replaceChildren(
      el("p", { class: "meta" }, "第 " + roster.version + " 版 · " + roster.submitted_by + " · " +
        fmtTime(roster.submitted_at) + " ", en("version " + roster.version)),
      table);
    if (roster.notes) body.append(el("p", { class: "meta", text: "备注：" + roster.notes }));
  }

  // ---------- the form ----------
  const form = $("#roster-form");
  const staffList = $("#rf-staff");
  let staffSeq = 0;

  function staffRow(s) {
    const n = ++staffSeq;
    const id = (k) => "rf-s" + n + "-" + k;
    const li = el("li", { class: "staff-row" });
    const name = el("input", { id: id("name"), class: "s-name", maxLength: 100, required: true });
    const phone = el("input", { id: id("phone"), class: "s-phone phone", maxLength: 40, required: true,
      inputMode: "tel", placeholder: "例如 13812345678" });
    const days = el("div", { class: "days" });
    for (let d = 1; d <= 7; d++) {
      const box = el("input", { type: "checkbox", id: id("d" + d), value: String(d), class: "s-day" });
      days.append(el("label", { class: "day", htmlFor: id("d" + d) }, box, "周" + DAYS[d - 1]));
    }
    const start = el("input", { type: "time", id: id("start"), class: "s-start" });
    const end = el("input", { type: "time", id: id("end"), class: "s-end" });
    const up = el("button", { type: "button", class: "small s-up", text: "上移", title: "move up" });
    const down = el("button", { type: "button", class: "small s-down", text: "下移", title: "move down" });
    const del = el("button", { type: "button", class: "small s-del", text: "删除", title: "remove" });
    li.append(
      el("div", { class: "row" },
        el("div", { class: "field", "data-part": "name" },
          el("label", { htmlFor: id("name") }, "姓名 ", en("name")), name, el("div", { class: "field-error", "aria-live": "polite" })),
        el("div", { class: "field", "data-part": "phone" },
          el("label", { htmlFor: id("phone") }, "电话 ", en("phone")), phone,
          el("div", { class: "field-hint", "aria-live": "polite" }), el("div", { class: "field-error", "aria-live": "polite" })),
        el("div", { class: "s-tools" }, up, down, del)),
      el("div", { class: "field shift", "data-part": "shift" },
        el("fieldset", {}, el("legend", {}, "班次 ", en("shift: no day and no time = the whole week; end ≤ start = overnight")),
          days,
          el("div", { class: "row" },
            el("label", { htmlFor: id("start") }, "开始 ", en("from")), start,
            el("label", { htmlFor: id("end") }, "结束 ", en("to")), end)),
        el("div", { class: "field-error", "aria-live": "polite" })));
    if (s) {
      name.value = s.name || "";
      phone.value = s.phone || "";
      if (s.shift) {
        for (const d of s.shift.days || []) li.querySelector("#" + id("d" + d)).checked = true;
        if (s.shift.start) start.value = s.shift.start.slice(0, 5);
        if (s.shift.end) end.value = s.shift.end.slice(0, 5);
      }
    }
    up.addEventListener("click", () => { if (li.previousElementSibling) { li.previousElementSibling.before(li); renumber(); up.focus(); } });
    down.addEventListener("click", () => { if (li.nextElementSibling) { li.nextElementSibling.after(li); renumber(); down.focus(); } });
    del.addEventListener("click", () => {
      if (staffList.children.length <= 1) return;
      const next = li.nextElementSibling || li.previousElementSibling;
      li.remove();
      renumber();
      if (next) next.querySelector(".s-name").focus();
    });
    return li;
  }

  // data-field follows the API's error paths: staff[0].phone (0-based, in dialling order)
  function renumber() {
    [...staffList.children].forEach((li, i) => {
      li.dataset.index = String(i);
      for (const f of li.querySelectorAll(".field[data-part]")) f.dataset.field = "staff[" + i + "]." + f.dataset.part;
      li.querySelector(".s-up").disabled = i === 0;
      li.querySelector(".s-down").disabled = i === staffList.children.length - 1;
      li.querySelector(".s-del").disabled = staffList.children.length <= 1;
      li.setAttribute("aria-label", "第 " + (i + 1) + " 位值班人员");
    });
  }

  function fillForm(roster) {
    $("#rf-leader-name").value = roster ? roster.leader.name : "";
    $("#rf-leader-phone").value = roster ? roster.leader.phone : "";
    $("#rf-notes").value = roster && roster.notes ? roster.notes : "";
    const staff = roster ? [...roster.staff].sort((a, b) => a.order - b.order) : [null];
    staffList.replaceChildren(...staff.map(staffRow));
    renumber();
    clearErrors();
    for (const input of form.querySelectorAll("input.phone")) if (input.value) checkSoon(input, 0);
  }

  $("#rf-add").addEventListener("click", () => {
    const li = staffRow(null);
    staffList.append(li);
    renumber();
    li.querySelector(".s-name").focus();
  });

  function clearErrors() {
    for (const f of form.querySelectorAll(".field")) {
      f.classList.remove("invalid");
      const box = f.querySelector(":scope > .field-error");
      if (box) box.replaceChildren();
    }
    hideMsg($("#rf-msg"));
  }

  function setFieldError(field, zh, english) {
    field.classList.add("invalid");
    const box = field.querySelector(":scope > .field-error");
    box.replaceChildren(el("div", {}, el("span", { text: zh }), english ? " " : "", english ? en(english) : null));
  }

  function clearFieldError(field) {
    field.classList.remove("invalid");
    field.querySelector(":scope > .field-error").replaceChildren();
  }

  // ---------- numbers checked as they are typed (POST /api/v1/numbers/check) ----------
  const timers = new WeakMap();
  const seq = new WeakMap();

  function checkSoon(input, delay) {
    clearTimeout(timers.get(input));
    timers.set(input, setTimeout(() => checkNumber(input), delay));
  }

  async function checkNumber(input) {
    const field = input.closest(".field");
    const hint = field.querySelector(".field-hint");
    const raw = input.value.trim();
    const n = (seq.get(input) || 0) + 1;
    seq.set(input, n);
    if (!raw) { clearFieldError(field); hint.textContent = ""; return; }
    let res;
    try {
      res = await api("/api/v1/numbers/check", { method: "POST", json: { number: raw, field: field.dataset.field } });
    } catch (err) {
      return; // the save will tell; nothing to show while typing
    }
    if (seq.get(input) !== n || input.value.trim() !== raw) return; // typed on meanwhile
    if (res.valid) {
      clearFieldError(field);
      hint.replaceChildren(el("span", { text: "✓ 号码有效：" + res.display }), " ", en("stored as " + res.canonical));
    } else {
      hint.textContent = "";
      setFieldError(field, (L.vocab.FIELD_ERROR_TYPE[res.type] || "号码有误") + "：", res.reason);
    }
  }

  form.addEventListener("input", (ev) => {
    if (ev.target.classList.contains("phone")) checkSoon(ev.target, 350);
  });
  form.addEventListener("focusout", (ev) => {
    if (ev.target.classList && ev.target.classList.contains("phone")) checkSoon(ev.target, 0);
  });

  // ---------- save ----------
  function formBody() {
    const problems = [];
    const v = (node) => node.value.trim();
    const need = (input, zh, english) => { if (!v(input)) problems.push([input.closest(".field"), zh, english]); };
    need($("#rf-leader-name"), "请填写带班领导姓名", "the leader's name is required");
    need($("#rf-leader-phone"), "请填写带班领导电话", "the leader's phone is required");
    const staff = [...staffList.children].map((li, i) => {
      need(li.querySelector(".s-name"), "请填写姓名", "name is required");
      need(li.querySelector(".s-phone"), "请填写电话", "phone is required");
      const days = [...li.querySelectorAll(".s-day:checked")].map((b) => Number(b.value));
      const start = li.querySelector(".s-start").value, end = li.querySelector(".s-end").value;
      let shift = null;
      if ((start && !end) || (!start && end)) {
        problems.push([li.querySelector(".field.shift"), "请同时填写开始和结束时间", "give both times or neither"]);
      } else if (days.length || start) {
        shift = { days, start: start || null, end: end || null };
      }
      return { name: v(li.querySelector(".s-name")), phone: v(li.querySelector(".s-phone")), order: i + 1, shift };
    });
    const body = { leader: { name: v($("#rf-leader-name")), phone: v($("#rf-leader-phone")) }, staff };
    if (v($("#rf-notes"))) body.notes = v($("#rf-notes"));
    return { body, problems };
  }

  // "body.staff.1.phone" (request validation) or "staff[1].phone" (number check) -> the field
  function fieldForPath(path) {
    let p = String(path || "").replace(/^body\./, "").replace(/\.(\d+)(?=\.|$)/g, "[$1]");
    for (;;) {
      const f = form.querySelector('.field[data-field="' + CSS.escape(p) + '"]');
      if (f) return f;
      const cut = p.lastIndexOf(".");
      if (cut < 0) return null;
      p = p.slice(0, cut);
    }
  }

  let saving = false;
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    if (saving || !me) return;
    clearErrors();
    const week = $("#rf-week").value;
    const { body, problems } = formBody();
    if (problems.length) {
      for (const [field, zh, english] of problems) setFieldError(field, zh, english);
      showMsg($("#rf-msg"), "error", "请先改正标红的栏目，未保存。", "fix the fields in red; nothing was saved");
      problems[0][0].querySelector("input")?.focus();
      return;
    }
    saving = true;
    $("#rf-save").disabled = true;
    try {
      const saved = await api(unitPath() + "/rosters/" + encodeURIComponent(week), { method: "PUT", json: body });
      showMsg($("#rf-msg"), "ok", "已保存 " + saved.week + " 第 " + saved.version + " 版。", "saved version " + saved.version);
      await loadWeeks();
      await loadHistory(week);
    } catch (err) {
      const t = L.problemText(err);
      const placed = [];
      for (const e of (err.problem && err.problem.errors) || []) {
        const f = fieldForPath(e.field);
        if (!f) continue;
        const zh = e.type === "phone_number" ? "号码不可用：" : "输入有误：";
        setFieldError(f, zh, e.message);
        placed.push(f);
      }
      showMsg($("#rf-msg"), "error", (placed.length ? "有栏目未通过校验，未保存：" : "保存失败：") + t.zh, t.detail);
      if (placed.length) placed[0].querySelector("input")?.focus();
    } finally {
      saving = false;
      $("#rf-save").disabled = false;
    }
  });

  async function loadFormWeek() {
    const week = $("#rf-week").value;
    let roster = weeks[week];
    if (roster === undefined) {
      try {
        const got = await api(unitPath() + "/rosters?week=" + encodeURIComponent(week));
        roster = got.length ? await api(unitPath() + "/rosters/" + encodeURIComponent(week)) : null;
      } catch (err) {
        showError($("#rf-msg"), err);
        return;
      }
    }
    fillForm(roster || null);
    await loadHistory(week);
  }
  $("#rf-week").addEventListener("change", loadFormWeek);

  // 复制上周: the week before the one being edited, into the form (saved only with 保存)
  $("#rf-copy").addEventListener("click", async () => {
    const target = $("#rf-week").value;
    const offset = target === isoWeek(0) ? -1 : 0;
    const source = isoWeek(offset);
    hideMsg($("#rf-msg"));
    try {
      const got = await api(unitPath() + "/rosters?week=" + encodeURIComponent(source));
      if (!got.length) {
        showMsg($("#rf-msg"), "error", "上周（" + source + "）没有值班表可复制。", "no roster for " + source);
        return;
      }
      const roster = await api(unitPath() + "/rosters/" + encodeURIComponent(source));
      fillForm(roster);
      showMsg($("#rf-msg"), "info", "已将上周（" + source + " 第 " + roster.version + " 版）复制到表单，请核对后点“保存”。",
        "copied " + source + " into the form for " + target + "; not saved yet");
      $("#rf-leader-name").focus();
    } catch (err) {
      showError($("#rf-msg"), err);
    }
  });

  // ---------- the unit's own sheet ----------
  async function download(format) {
    const week = $("#rf-week").value;
    hideMsg($("#rf-upload-msg"));
    try {
      const resp = await api(unitPath() + "/rosters/" + encodeURIComponent(week) + "/template?format=" + format, { raw: true });
      const blob = await resp.blob();
      const url = URL.createObjectURL(blob);
      const a = el("a", { href: url });
      a.setAttribute("download", "roster-" + me.unit_code + "-" + week + "." + format);
      document.body.append(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(url), 10000);
    } catch (err) {
      showError($("#rf-upload-msg"), err);
    }
  }
  $("#rf-template").addEventListener("click", () => download("xlsx"));
  $("#rf-template-csv").addEventListener("click", () => download("csv"));

  $("#rf-upload").addEventListener("click", async () => {
    const input = $("#rf-file");
    const msg = $("#rf-upload-msg");
    const table = $("#rf-upload-errors");
    hideMsg(msg);
    table.hidden = true;
    if (!input.files.length) { showMsg(msg, "error", "请先选择 XLSX 或 CSV 文件。", "choose a file"); input.focus(); return; }
    const data = new FormData();
    data.append("file", input.files[0]);
    $("#rf-upload").disabled = true;
    try {
      const res = await api("/api/v1/rosters/import", { method: "POST", body: data });
      showMsg(msg, "ok", "已导入 " + res.imported + " 份值班表：" + res.rosters.join("、"), "imported, a new version each");
      input.value = "";
      await loadWeeks();
      await loadFormWeek();
    } catch (err) {
      const rows = (err.problem && err.problem.errors) || [];
      const t = L.problemText(err);
      showMsg(msg, "error", rows.length ? "表格有 " + rows.length + " 处问题，全部未导入。" : "导入失败：" + t.zh, t.detail);
      if (rows.length) {
        table.querySelector("tbody").replaceChildren(...rows.map((e) => el("tr", {},
          el("td", { text: String(e.row) }), el("td", { text: e.field || "—" }), el("td", { text: e.message }))));
        table.hidden = false;
      }
    } finally {
      $("#rf-upload").disabled = false;
    }
  });

  // ---------- version history: who changed what ----------
  function changes(prev, cur) {
    if (!prev) return ["首次报备 (first version)"];
    const out = [];
    if (prev.leader.name !== cur.leader.name || prev.leader.phone !== cur.leader.phone) {
      out.push("带班领导：" + prev.leader.name + " " + prev.leader.phone + " → " + cur.leader.name + " " + cur.leader.phone);
    }
    const before = new Map(prev.staff.map((s) => [s.name, s]));
    const after = new Map(cur.staff.map((s) => [s.name, s]));
    for (const s of cur.staff) {
      const old = before.get(s.name);
      if (!old) out.push("新增值班人员：" + s.name + " " + s.phone);
      else {
        if (old.phone !== s.phone) out.push(s.name + " 电话：" + old.phone + " → " + s.phone);
        if (JSON.stringify(old.shift) !== JSON.stringify(s.shift)) out.push(s.name + " 班次：" + shiftText(old.shift) + " → " + shiftText(s.shift));
        if (old.order !== s.order) out.push(s.name + " 顺序：" + old.order + " → " + s.order);
      }
    }
    for (const s of prev.staff) if (!after.has(s.name)) out.push("移除值班人员：" + s.name);
    if ((prev.notes || "") !== (cur.notes || "")) out.push("备注已修改");
    return out.length ? out : ["内容未变（重新提交） (resubmitted unchanged)"];
  }

  async function loadHistory(week) {
    $("#rf-history-week").textContent = week;
    const list = $("#rf-history");
    try {
      const got = await api(unitPath() + "/rosters?week=" + encodeURIComponent(week));
      if (!got.length) {
        list.replaceChildren();
        $("#rf-history-empty").hidden = false;
        return;
      }
      const r = await api(unitPath() + "/rosters/" + encodeURIComponent(week) + "?history=true");
      const versions = r.history || [r];
      $("#rf-history-empty").hidden = true;
      list.replaceChildren(...versions.map((v, i) => el("li", { "data-version": String(v.version) },
        el("strong", { text: "第 " + v.version + " 版" }), " ",
        el("span", { class: "who", text: v.submitted_by }), " ",
        el("span", { class: "time", text: fmtTime(v.submitted_at) }),
        el("ul", { class: "changes" }, ...changes(versions[i - 1], v).map((c) => el("li", { text: c }))))).reverse());
    } catch (err) {
      showError($("#rf-msg"), err);
    }
  }

  // ---------- incidents diverted to the unit ----------
  async function loadIncidents() {
    const box = $("#ui-list");
    hideMsg($("#ui-msg"));
    let list;
    try {
      list = await api("/api/v1/incidents?limit=50");
    } catch (err) {
      showError($("#ui-msg"), err);
      return;
    }
    box.replaceChildren(...list.map(incidentCard));
    $("#ui-empty").hidden = list.length > 0;
  }
  $("#ui-refresh").addEventListener("click", loadIncidents);

  function incidentCard(inc) {
    const card = el("article", { class: "card incident", "data-incident": inc.id, "data-state": inc.state });
    card.append(el("div", { class: "call-head" },
      el("span", { class: "badge", "data-state": inc.state, text: label(L.vocab.INCIDENT_STATE, inc.state) }),
      el("strong", { text: inc.type }),
      el("span", { text: label(L.vocab.CATEGORY, inc.category) }),
      el("span", { class: "time", text: "接警 " + fmtTime(inc.received_at) }),
      inc.rework ? el("span", { class: "badge rework", text: "需返工 rework" }) : null,
      en(inc.id)));
    card.append(el("p", { text: inc.summary }));
    if (inc.rework_reason) card.append(el("p", { class: "meta warn", text: "返工原因：" + inc.rework_reason }));
    if (inc.feedback) card.append(el("p", { class: "meta", text: "办结反馈：" + inc.feedback }));
    const msg = el("div", { class: "msg", role: "status", hidden: true });
    if (inc.state === "diverted") {
      const btn = el("button", { type: "button", class: "primary small-primary", text: "接收 (accept)" });
      btn.addEventListener("click", async () => {
        btn.disabled = true;
        try {
          await api("/api/v1/incidents/" + encodeURIComponent(inc.id) + "/accept", { method: "POST", json: {} });
          await loadIncidents();
        } catch (err) { showError(msg, err); btn.disabled = false; }
      });
      card.append(el("div", { class: "call-tools" }, btn));
    } else if (inc.state === "accepted") {
      const fid = "fb-" + inc.id;
      const text = el("textarea", { id: fid, rows: 2, maxLength: 4000, class: "feedback" });
      const btn = el("button", { type: "button", class: "primary small-primary", text: "办结 (close)" });
      btn.addEventListener("click", async () => {
        if (!text.value.trim()) { showMsg(msg, "error", "请填写办结反馈。", "feedback is required"); text.focus(); return; }
        btn.disabled = true;
        try {
          await api("/api/v1/incidents/" + encodeURIComponent(inc.id) + "/close", { method: "POST", json: { feedback: text.value.trim() } });
          await loadIncidents();
        } catch (err) { showError(msg, err); btn.disabled = false; }
      });
      card.append(el("div", { class: "field" }, el("label", { htmlFor: fid }, "办结反馈 ", en("feedback to the center")), text),
        el("div", { class: "call-tools" }, btn));
    }
    card.append(msg);
    return card;
  }

  document.addEventListener("linkcall:view", (ev) => {
    if (ev.detail === "unit" && me && me.role === "unit" && loaded) loadIncidents();
  });
})();
