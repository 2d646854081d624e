// linkcall console: 管理 (admin token) — units: add, edit, deactivate / reactivate
// (PATCH /api/v1/units/{code}); tokens: create (the secret shown once), list, revoke.
"use strict";

(function () {
  const L = window.linkcall;
  const { api, el, en, label, fmtTime, showMsg, showError, hideMsg } = L;
  const $ = (sel) => document.querySelector(sel);
  const KIND = { linkage: "联动单位", township: "乡镇" };
  let units = [];
  let editing = null; // the unit code being edited, or null when adding

  document.addEventListener("linkcall:view", (ev) => {
    if (ev.detail === "admin" && L.me() === "admin") { loadUnits(); loadTokens(); }
  });
  document.addEventListener("linkcall:logout", () => {
    $("#units-table tbody").replaceChildren();
    $("#tokens-table tbody").replaceChildren();
    $("#tf-secret").hidden = true;
    $("#tf-secret-value").textContent = "";
  });

  function clearErrors(form) {
    for (const f of form.querySelectorAll(".field")) {
      f.classList.remove("invalid");
      const box = f.querySelector(".field-error");
      if (box) box.replaceChildren();
    }
  }
  function fieldErrors(form, err) {
    let placed = 0;
    for (const e of (err.problem && err.problem.errors) || []) {
      const name = String(e.field || "").replace(/^body\./, "");
      const f = form.querySelector('.field[data-field="' + CSS.escape(name) + '"]');
      if (!f) continue;
      f.classList.add("invalid");
      f.querySelector(".field-error").append(el("div", {}, el("span", { text: "输入有误：" }), en(e.message || "")));
      placed++;
    }
    return placed;
  }

  // ---------- units ----------
  async function loadUnits() {
    try {
      units = await api("/api/v1/units");
    } catch (err) { showError($("#uf-msg"), err); return; }
    $("#units-table tbody").replaceChildren(...units.map(unitRow));
    const select = $("#tf-unit");
    const keep = select.value;
    select.replaceChildren(el("option", { value: "", text: "—" }),
      ...units.filter((u) => u.active).map((u) => el("option", { value: u.code, text: u.code + " " + u.name })));
    select.value = keep;
  }

  function unitRow(u) {
    const edit = el("button", { type: "button", class: "small", text: "编辑", title: "edit " + u.code });
    edit.addEventListener("click", () => startEdit(u));
    const toggle = el("button", { type: "button", class: u.active ? "small danger" : "small",
      text: u.active ? "停用" : "启用", title: (u.active ? "deactivate " : "reactivate ") + u.code });
    toggle.addEventListener("click", () => setActive(u, !u.active, toggle));
    return el("tr", { "data-unit": u.code, "data-active": String(u.active) },
      el("td", { text: u.code }), el("td", { text: u.name }), el("td", { text: label(KIND, u.kind) }),
      el("td", { text: u.fallback_number || "—" }),
      el("td", {}, el("span", { class: "badge", "data-state": u.active ? "connected" : "ended",
        text: u.active ? "启用" : "已停用" })),
      el("td", {}, el("div", { class: "leg-actions" }, edit, toggle)));
  }

  function startEdit(u) {
    editing = u.code;
    $("#uf-code").value = u.code;
    $("#uf-code").disabled = true;
    $("#uf-name").value = u.name;
    $("#uf-kind").value = u.kind;
    $("#uf-fallback").value = u.fallback_number || "";
    $("#uf-save").replaceChildren("保存修改 ", en("save " + u.code));
    $("#uf-cancel").hidden = false;
    clearErrors($("#unit-form"));
    $("#uf-name").focus();
  }
  function stopEdit() {
    editing = null;
    $("#unit-form").reset();
    $("#uf-code").disabled = false;
    $("#uf-save").replaceChildren("新增单位 ", en("add"));
    $("#uf-cancel").hidden = true;
  }
  $("#uf-cancel").addEventListener("click", stopEdit);

  $("#unit-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const form = $("#unit-form");
    clearErrors(form);
    hideMsg($("#uf-msg"));
    const v = (id) => $(id).value.trim();
    const body = { name: v("#uf-name"), kind: v("#uf-kind"), fallback_number: v("#uf-fallback") || null };
    try {
      if (editing) {
        const u = await api("/api/v1/units/" + encodeURIComponent(editing), { method: "PATCH", json: body });
        showMsg($("#uf-msg"), "ok", "已保存单位 " + u.code + " " + u.name + "。", "unit updated");
        stopEdit();
      } else {
        body.code = v("#uf-code");
        const u = await api("/api/v1/units", { method: "POST", json: body });
        showMsg($("#uf-msg"), "ok", "已新增单位 " + u.code + " " + u.name + "。", "unit created");
        form.reset();
      }
      await loadUnits();
      L.loadUnits(); // the bridge form's list
    } catch (err) {
      fieldErrors(form, err);
      showError($("#uf-msg"), err);
    }
  });

  async function setActive(u, active, btn) {
    hideMsg($("#uf-msg"));
    if (!active && !window.confirm("停用 " + u.code + " " + u.name + "？停用后不再出现在三方通话的单位列表中，历史记录保留。")) return;
    btn.disabled = true;
    try {
      await api("/api/v1/units/" + encodeURIComponent(u.code), { method: "PATCH", json: { active } });
      showMsg($("#uf-msg"), "ok", (active ? "已启用 " : "已停用 ") + u.code + " " + u.name + "。",
        active ? "reactivated" : "deactivated: no longer offered for bridges; history kept");
      await loadUnits();
      L.loadUnits();
    } catch (err) { showError($("#uf-msg"), err); btn.disabled = false; }
  }

  // ---------- tokens ----------
  $("#tf-role").addEventListener("change", () => {
    const unit = $("#tf-role").value === "unit";
    $("#tf-unit").disabled = !unit;
    if (!unit) $("#tf-unit").value = "";
  });

  async function loadTokens() {
    let list;
    try { list = await api("/api/v1/tokens"); } catch (err) { showError($("#tf-msg"), err); return; }
    $("#tokens-table tbody").replaceChildren(...list.map(tokenRow));
  }

  function tokenState(t) {
    if (t.revoked_at) return ["failed", "已吊销 " + fmtTime(t.revoked_at)];
    if (t.expires_at && new Date(t.expires_at) <= new Date()) return ["failed", "已过期 " + fmtTime(t.expires_at)];
    return ["connected", t.expires_at ? "有效 至 " + fmtTime(t.expires_at) : "有效（不过期）"];
  }

  function tokenRow(t) {
    const revoked = Boolean(t.revoked_at);
    const [state, stateText] = tokenState(t);
    const cells = [
      el("td", { text: t.name }), el("td", {}, label(L.vocab.ROLE_NAME, t.role), " ", en(t.role)),
      el("td", { text: t.unit_code || "—" }), el("td", {}, el("code", { text: "lc_" + t.prefix + "_…" })),
      el("td", { text: fmtTime(t.created_at) }), el("td", { text: t.last_used_at ? fmtTime(t.last_used_at) : "—" }),
      el("td", {}, el("span", { class: "badge", "data-state": state, text: stateText,
        title: "expires " + (t.expires_at || "never") })),
    ];
    const cell = el("td");
    if (!revoked) {
      const btn = el("button", { type: "button", class: "small danger", text: "吊销", title: "revoke " + t.name });
      btn.addEventListener("click", () => revoke(t, btn));
      cell.append(btn);
    }
    return el("tr", { "data-token": t.id, "data-revoked": String(revoked) }, ...cells, cell);
  }

  async function revoke(t, btn) {
    hideMsg($("#tf-msg"));
    if (!window.confirm("吊销令牌“" + t.name + "”？使用它的人将立即无法登录。")) return;
    btn.disabled = true;
    try {
      await api("/api/v1/tokens/" + encodeURIComponent(t.id) + "/revoke", { method: "POST" });
      showMsg($("#tf-msg"), "ok", "已吊销令牌“" + t.name + "”。", "revoked; it stops working at once");
      await loadTokens();
    } catch (err) { showError($("#tf-msg"), err); btn.disabled = false; }
  }

  $("#token-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const form = $("#token-form");
    clearErrors(form);
    hideMsg($("#tf-msg"));
    $("#tf-secret").hidden = true;
    const body = { name: $("#tf-name").value.trim(), role: $("#tf-role").value };
    if (body.role === "unit") body.unit_code = $("#tf-unit").value || null;
    if (!body.name) {
      const f = form.querySelector('.field[data-field="name"]');
      f.classList.add("invalid");
      f.querySelector(".field-error").append(el("div", { text: "请填写名称 (name is required)" }));
      return;
    }
    if (body.role === "unit" && !body.unit_code) {
      const f = form.querySelector('.field[data-field="unit_code"]');
      f.classList.add("invalid");
      f.querySelector(".field-error").append(el("div", { text: "单位令牌需要选择所属单位 (a unit token needs a unit)" }));
      return;
    }
    try {
      const t = await api("/api/v1/tokens", { method: "POST", json: body });
      $("#tf-secret-value").textContent = t.token; // shown once; never stored by the page
      $("#tf-secret").hidden = false;
      form.reset();
      $("#tf-unit").disabled = true;
      $("#tf-secret-value").focus();
      await loadTokens();
    } catch (err) {
      fieldErrors(form, err);
      showError($("#tf-msg"), err);
    }
  });

  $("#tf-copy").addEventListener("click", async () => {
    const text = $("#tf-secret-value").textContent;
    try {
      await navigator.clipboard.writeText(text);
      showMsg($("#tf-msg"), "ok", "已复制到剪贴板。", "copied");
    } catch (e) {
      const range = document.createRange();
      range.selectNodeContents($("#tf-secret-value"));
      const sel = window.getSelection();
      sel.removeAllRanges();
      sel.addRange(range);
      showMsg($("#tf-msg"), "info", "请按 Ctrl+C 复制已选中的令牌。", "press Ctrl+C to copy the selection");
    }
  });
})();
