// linkcall console: plain JS, no framework, no external resource.
// Every text from the API goes into the page through textContent (never innerHTML).
// The token lives in sessionStorage only; it is sent in the Authorization header, never in a URL.
"use strict";

(function () {
  const TOKEN_KEY = "linkcall.token";
  const ZONE = "Asia/Shanghai";

  // ---------- vocabulary (Chinese first, English second) ----------
  const CALL_STATE = {
    dialing: "呼叫中", connected: "已接通", ended: "已结束", failed: "未接通/失败",
    ringing: "振铃中", announcing: "播放提示", unanswered: "无人应答", handed_over: "已转接",
  };
  const LEG_STATE = {
    absent: "未加入", waiting: "等待拨号", dialing: "呼叫中", confirming: "等待按键确认",
    connected: "已接通", left: "已离开", unreachable: "无法接通",
  };
  const ROLE = {
    caller: "群众", dispatcher: "调度席", unit: "联动单位", unit2: "联动单位2", unit3: "联动单位3",
    seat: "调度席", callee: "被叫",
  };
  const KIND = {
    bridge: "三方通话", inbound: "呼入", callback: "回访", duty_check: "查岗", reminder: "报备提醒",
  };
  const RESULT = {
    answered: "已接听", no_answer: "无人接听", cancelled: "已取消", answered_elsewhere: "他处已接听",
    busy: "占线", declined: "拒接", not_found: "号码不存在", unreachable: "无法接通", timeout: "超时",
    auth_failed: "认证失败", incompatible: "媒体不兼容", rejected: "被拒绝", failed: "失败",
    normal_local: "本方挂断", normal_remote: "对方挂断",
    not_confirmed: "未按1确认", extension_failed: "分机号发送失败", replaced: "已更换单位",
    dropped: "调度员挂断",
    ended_by_request: "调度员结束通话", fewer_than_two_parties: "不足两方，通话结束",
    deadline: "拨号超时", bridge_ended: "通话结束", bridge_failed: "通话失败",
    caller_hung_up: "群众挂断", dispatcher_hung_up: "调度席挂断", caller_abandoned: "群众放弃",
    no_dispatcher_answered: "无调度席接听", handed_over: "已转接",
    shutdown: "服务停止", runner_failed: "服务内部错误", interrupted: "服务重启中断",
    node_lost: "节点失联", media_timeout: "无语音流（对方已断开）",
  };
  // "unreachable:unit" -> 无法接通（联动单位）
  function reasonText(r) {
    if (r == null) return "—";
    const [head, role] = String(r).split(":");
    return label(RESULT, head) + (role ? "（" + label(ROLE, role) + "）" : "");
  }
  const DUTY_ROLE = { staff: "值班人员", leader: "带班领导", fallback: "备用号码" };
  const INCIDENT_STATE = {
    received: "新警情", diverted: "已分流", accepted: "已接收", closed: "已办结", surveyed: "已回访",
  };
  const CATEGORY = { police: "警务类", non_police: "非警务类" };
  const ANSWER = { satisfied: "满意", basically_satisfied: "基本满意", unsatisfied: "不满意" };
  const ROLE_NAME = { dispatcher: "调度员", supervisor: "督导员", admin: "管理员", unit: "单位值班员" };
  const PROBLEM_TITLE = {
    "Number refused": "号码不可拨打",
    "Unknown unit": "未知单位",
    "No number for the unit": "该单位本周没有可拨打的值班电话",
    "Telephony unavailable": "电话系统暂不可用",
    "Authentication required": "请先输入访问令牌",
    "Invalid token": "令牌无效、已吊销或已过期",
    "Forbidden": "权限不足",
    "Bridge is over": "通话已经结束",
    "Not possible now": "当前无法执行此操作",
    "Invalid request": "请求内容有误",
    "Invalid week": "周次格式有误",
    "Not Found": "未找到",
    "No such track": "没有该录音分轨",
    "Recording file missing": "录音文件缺失",
    "Invalid phone number": "号码无效或不允许拨打",
    "Import refused": "表格未通过校验",
    "Unreadable sheet": "无法读取表格文件",
    "Upload too large": "文件过大",
    "No roster": "未报备值班表",
    "Conflict": "数据冲突，请刷新后重试",
  };
  const FIELD_ERROR_TYPE = {
    DialRefused: "不允许拨打此号码",
    InvalidNumber: "号码格式无效",
    unknown: "不存在",
    missing: "必填",
  };
  const ACTIONS = [
    ["hangup", "挂断", "hang up"], ["redial", "重拨", "redial"],
    ["mute", "静音", "mute"], ["unmute", "取消静音", "unmute"],
    ["hold", "保持", "hold"], ["unhold", "取消保持", "unhold"],
  ];

  const $ = (sel) => document.querySelector(sel);
  const label = (map, key) => (key == null ? "—" : map[key] || key);

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v == null || v === false) continue;
      if (k === "class") node.className = v;
      else if (k === "text") node.textContent = v;
      else if (k.startsWith("data-") || k.startsWith("aria-")) node.setAttribute(k, v);
      else if (k === "title" || k === "type" || k === "href" || k === "role") node.setAttribute(k, v);
      else node[k] = v;
    }
    for (const c of children) {
      if (c == null) continue;
      node.append(typeof c === "string" ? document.createTextNode(c) : c);
    }
    return node;
  }

  function en(text) { return el("span", { class: "en", text }); }

  function fmtTime(iso) {
    if (!iso) return "—";
    const d = new Date(iso);
    if (isNaN(d)) return iso;
    return d.toLocaleString("zh-CN", { timeZone: ZONE, hour12: false });
  }

  // ---------- token and API ----------
  let token = sessionStorage.getItem(TOKEN_KEY) || "";

  class ApiError extends Error {
    constructor(status, problem) {
      super((problem && (problem.detail || problem.title)) || "HTTP " + status);
      this.status = status;
      this.problem = problem || {};
    }
  }

  async function api(path, opts) {
    const o = opts || {};
    const headers = { Accept: "application/json", ...(o.headers || {}) };
    if (token) headers.Authorization = "Bearer " + token;
    let body;
    if (o.json !== undefined) {
      headers["Content-Type"] = "application/json";
      body = JSON.stringify(o.json);
    }
    if (o.body !== undefined) body = o.body; // e.g. FormData (the browser sets the type)
    let resp;
    try {
      resp = await fetch(path, { method: o.method || "GET", headers, body, cache: "no-store" });
    } catch (e) {
      throw new ApiError(0, { title: "Network error", detail: "无法连接服务器 (network error)" });
    }
    if (resp.status === 401) onUnauthorized();
    if (!resp.ok) {
      let problem = null;
      try { problem = await resp.json(); } catch (e) { problem = { title: resp.statusText }; }
      throw new ApiError(resp.status, problem);
    }
    if (o.raw) return resp;
    if (resp.status === 204) return null;
    const data = await resp.json();
    return o.withStatus ? { status: resp.status, data } : data;
  }

  // A problem as two lines: Chinese summary, then the API's own words (English) in small print.
  function problemText(err) {
    const p = err.problem || {};
    let zh;
    if (err.status === 0) zh = "无法连接服务器，请检查网络";
    else if (err.status === 401) zh = PROBLEM_TITLE[p.title] || "令牌无效、已吊销或已过期";
    else if (err.status === 403) zh = "权限不足：当前令牌的角色不能执行此操作";
    else zh = PROBLEM_TITLE[p.title] || p.title || "操作失败";
    const detail = [p.detail, err.status ? "HTTP " + err.status : null].filter(Boolean).join(" · ");
    return { zh, detail };
  }

  function showMsg(node, kind, zh, detail) {
    node.replaceChildren(el("span", { text: zh }));
    if (detail) node.append(" ", en(detail));
    node.className = "msg " + kind;
    node.hidden = false;
  }

  function showError(node, err) {
    const t = problemText(err);
    showMsg(node, "error", t.zh, t.detail);
  }

  function hideMsg(node) { node.hidden = true; node.replaceChildren(); }

  // ---------- login ----------
  const authMsg = $("#auth-msg");

  function setSignedIn(yes) {
    $("#token").hidden = yes;
    $("#login-btn").hidden = yes;
    $("#login label").hidden = yes;
    $("#logout-btn").hidden = !yes;
  }

  function onUnauthorized() {
    stopEvents();
    setSignedIn(false);
    $("#whoami").textContent = "";
    showMsg(authMsg, "error", "令牌无效、已吊销或已过期，请重新输入访问令牌。",
      "The token is unknown or revoked: paste a valid token.");
  }

  async function login(newToken) {
    token = newToken;
    hideMsg(authMsg);
    if (!token) {
      showMsg(authMsg, "error", "请粘贴访问令牌。", "Paste the token made with `linkcall tokens create`.");
      return;
    }
    let me;
    try {
      me = await api("/api/v1/me");
    } catch (err) {
      sessionStorage.removeItem(TOKEN_KEY);
      token = "";
      if (err.status !== 401) showError(authMsg, err);
      return;
    }
    sessionStorage.setItem(TOKEN_KEY, token);
    $("#token").value = "";
    setSignedIn(true);
    const who = $("#whoami");
    who.replaceChildren(el("span", { text: "已登录：" + me.name + "（" + label(ROLE_NAME, me.role) + "）" }),
      " ", en(me.role + (me.unit_code ? " · " + me.unit_code : "")));
    who.dataset.role = me.role;
    applyRole(me.role);
    document.dispatchEvent(new CustomEvent("linkcall:login", { detail: me }));
    if (me.role === "unit") {
      showMsg(authMsg, "info", "单位令牌只能维护本单位值班表；发起和查看通话需要调度员令牌。",
        "Unit tokens cannot place or list calls.");
      return;
    }
    loadUnits();
    loadCalls();
    startEvents();
  }

  function logout() {
    sessionStorage.removeItem(TOKEN_KEY);
    token = "";
    stopEvents();
    calls.clear();
    bridges.clear();
    renderCalls();
    $("#whoami").textContent = "";
    delete $("#whoami").dataset.role;
    setSignedIn(false);
    applyRole(null);
    document.dispatchEvent(new CustomEvent("linkcall:logout"));
    showMsg(authMsg, "info", "已退出。", "Signed out; the token was removed from this tab.");
  }

  $("#login").addEventListener("submit", (ev) => {
    ev.preventDefault();
    login($("#token").value.trim());
  });
  $("#logout-btn").addEventListener("click", logout);

  // ---------- tabs ----------
  function showView(name) {
    for (const b of document.querySelectorAll(".tabs button")) {
      b.setAttribute("aria-selected", String(b.dataset.view === name));
    }
    for (const v of document.querySelectorAll(".view")) v.hidden = v.id !== "view-" + name;
    if (name === "duty" && !$("#missing-week").value) $("#missing-week").value = isoWeek(0);
    document.dispatchEvent(new CustomEvent("linkcall:view", { detail: name }));
  }

  // Each tab names the roles it is for (data-roles); signed out, the dispatcher's tabs show.
  function applyRole(role) {
    let first = null, selectedVisible = false;
    for (const b of document.querySelectorAll(".tabs button")) {
      const roles = (b.dataset.roles || "dispatcher supervisor admin").split(" ");
      b.hidden = !roles.includes(role || "dispatcher");
      if (!b.hidden && !first) first = b.dataset.view;
      if (!b.hidden && b.getAttribute("aria-selected") === "true") selectedVisible = true;
    }
    if (!selectedVisible && first) showView(first);
  }
  for (const b of document.querySelectorAll(".tabs button")) {
    b.addEventListener("click", () => showView(b.dataset.view));
  }

  // ---------- units ----------
  let units = [];

  async function loadUnits() {
    try {
      units = await api("/api/v1/units?active_only=true");
    } catch (err) {
      showError($("#bridge-msg"), err);
      return;
    }
    fillUnitSelect($("#f-unit"), true);
    fillUnitSelect($("#duty-unit"), false);
  }

  function fillUnitSelect(select, withNumberOption) {
    const keep = select.value;
    select.replaceChildren();
    if (withNumberOption) select.append(el("option", { value: "", text: "（直接输入号码 / enter a number）" }));
    const groups = [["linkage", "联动单位 linkage units"], ["township", "乡镇 townships"]];
    for (const [kind, title] of groups) {
      const group = el("optgroup", { label: title });
      for (const u of units.filter((x) => x.kind === kind)) {
        group.append(el("option", { value: u.code, text: u.code + " " + u.name }));
      }
      if (group.children.length) select.append(group);
    }
    if ([...select.options].some((o) => o.value === keep)) select.value = keep;
    if (withNumberOption) syncUnitNumber();
  }

  function unitName(code) {
    const u = units.find((x) => x.code === code);
    return u ? u.name : code;
  }

  // ---------- bridge form ----------
  const form = $("#bridge-form");
  const submitBtn = $("#bridge-submit");
  let idemKey = null; // one key per submission; kept for a retry after a network error
  let submitting = false;

  function newKey() {
    const bytes = new Uint8Array(16);
    crypto.getRandomValues(bytes); // randomUUID needs a secure context; this works on http too
    return "console-" + [...bytes].map((b) => b.toString(16).padStart(2, "0")).join("");
  }

  function syncUnitNumber() {
    const byNumber = $("#f-unit").value === "";
    $("#f-unit-number").disabled = !byNumber;
    if (!byNumber) $("#f-unit-number").value = "";
  }
  $("#f-unit").addEventListener("change", syncUnitNumber);
  form.addEventListener("input", () => { idemKey = null; });

  function clearFieldErrors() {
    for (const f of form.querySelectorAll(".field")) {
      f.classList.remove("invalid");
      f.querySelector(".field-error").replaceChildren();
    }
  }

  function fieldFor(name) {
    // "body.caller.number" / "caller.number" / "unit.dial_list[0]" -> the form field it belongs to
    const parts = String(name || "").split(".").filter((p) => p !== "body");
    const head = (parts[0] || "").replace(/\[.*$/, "");
    return form.querySelector('.field[data-field="' + head + '"]');
  }

  function showFieldError(field, e) {
    const box = field.querySelector(".field-error");
    field.classList.add("invalid");
    const zh = FIELD_ERROR_TYPE[e.type] || "输入有误";
    box.append(el("div", {}, el("span", { text: zh + "：" }), en(e.message || "")));
  }

  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    if (submitting) return; // a double click dials once
    clearFieldErrors();
    hideMsg($("#bridge-msg"));
    const v = (id) => $(id).value.trim();
    const missing = [];
    if (!v("#f-caller")) missing.push(["caller", "请填写群众号码", "caller number is required"]);
    if (!v("#f-dispatcher")) missing.push(["dispatcher", "请填写调度席位号码", "dispatcher number is required"]);
    if (!v("#f-unit") && !v("#f-unit-number")) missing.push(["unit", "请选择联动单位或填写号码", "choose a unit or enter a number"]);
    if (missing.length) {
      for (const [name, zh, msg] of missing) {
        const f = fieldFor(name);
        f.classList.add("invalid");
        f.querySelector(".field-error").append(el("div", {}, el("span", { text: zh }), " ", en(msg)));
      }
      return;
    }
    const body = {
      caller: { number: v("#f-caller") },
      dispatcher: { number: v("#f-dispatcher") },
      unit: v("#f-unit") ? { unit_code: v("#f-unit") } : { number: v("#f-unit-number") },
    };
    if (v("#f-incident")) body.incident_id = v("#f-incident");
    if (!idemKey) idemKey = newKey();
    submitting = true;
    submitBtn.disabled = true;
    try {
      const res = await api("/api/v1/bridges", {
        method: "POST", json: body, headers: { "Idempotency-Key": idemKey }, withStatus: true,
      });
      idemKey = null;
      const b = res.data;
      bridges.set(b.id, b);
      upsertCall(summaryOf(b));
      const zh = res.status === 202 ? "已发起三方通话，正在呼叫。" : "该请求已提交过，未重复拨号。";
      showMsg($("#bridge-msg"), "ok", zh, "bridge " + b.id);
      renderCalls();
      showView("calls");
    } catch (err) {
      if (err.status !== 0 && err.status < 500) idemKey = null; // a definitive answer
      showError($("#bridge-msg"), err);
      let placed = false;
      for (const e of (err.problem && err.problem.errors) || []) {
        const f = fieldFor(e.field);
        if (f) { showFieldError(f, e); placed = true; }
      }
      if (placed) $("#bridge-msg").classList.add("with-fields");
    } finally {
      submitting = false;
      submitBtn.disabled = false;
    }
  });

  // ---------- calls ----------
  const calls = new Map();   // id -> CallSummary
  const bridges = new Map(); // id -> BridgeOut (legs)
  const ACTIVE = new Set(["dialing", "connected", "ringing", "announcing"]);

  function summaryOf(b) {
    const parties = {};
    for (const l of b.legs) parties[l.role] = l.number;
    const old = calls.get(b.id) || {};
    return {
      ...old, id: b.id, kind: "bridge", state: b.state, incident_id: b.incident_id,
      unit_code: b.unit_code, parties, recording_id: b.recording_id, created_at: b.created_at,
      connected_at: b.connected_at, ended_at: b.ended_at, end_reason: b.end_reason,
      interrupted: b.interrupted, recordings: b.recordings || [],
      gap_started_at: b.gap_started_at, resumed_at: b.resumed_at,
    };
  }

  function upsertCall(c) { calls.set(c.id, { ...(calls.get(c.id) || {}), ...c }); }

  async function loadCalls() {
    if (!token) return;
    let list;
    try {
      list = await api("/api/v1/calls?limit=50");
    } catch (err) {
      showError($("#calls-msg"), err);
      return;
    }
    hideMsg($("#calls-msg"));
    const fresh = new Set(list.map((c) => c.id));
    for (const id of [...calls.keys()]) if (!fresh.has(id)) { calls.delete(id); streamSaid.delete(id); }
    for (const c of list) upsertCall(c);
    renderCalls();
    // legs of the bridges on screen (active ones and the latest few ended ones)
    const wanted = list.filter((c) => c.kind === "bridge").slice(0, 20);
    await Promise.all(wanted.map((c) => loadBridge(c.id)));
  }

  // The event stream runs ahead of the stored call: the service publishes a change, then its
  // writer thread stores it (docs/console.md). A read can come back older than what the stream
  // already said; it is read again shortly (bounded), and shown meanwhile with the stream's word
  // on each leg, so a connected leg never sits on screen as "dialing".
  const staleReads = new Map(); // id -> reads that came back older than the stream said
  const streamSaid = new Map(); // id -> {state, legs: Map(role -> {state, muted, held, attempts})}
  const rereads = new Map(); // id -> the timer of its next read (one at a time)
  const STALE_RETRIES = 20, STALE_RETRY_MS = 250;

  function said(id) {
    let w = streamSaid.get(id);
    if (!w) streamSaid.set(id, (w = { state: null, legs: new Map() }));
    return w;
  }

  function noteStreamEvent(type, ev) {
    if (type === "call.state" && ev.state && (ev.kind === "bridge" || ev.kind === "inbound")) {
      said(ev.call_id).state = ev.state;
    }
    if (type === "leg.state" && ev.role) {
      said(ev.call_id).legs.set(ev.role, { state: ev.state, muted: !!ev.muted, held: !!ev.held, attempts: ev.attempts || 0 });
    }
  }

  function readIsBehind(id, b) {
    const w = streamSaid.get(id);
    if (!w) return false;
    if (w.state && w.state !== b.state) return true;
    for (const [role, s] of w.legs) {
      const leg = b.legs.find((l) => l.role === role);
      if (!leg) { if (s.state !== "absent") return true; continue; }
      if (s.state !== leg.state || s.muted !== leg.muted || s.held !== leg.held) return true;
      if (s.attempts > leg.attempts.length) return true;
    }
    return false;
  }

  function withStreamLegs(id, b) {
    const w = streamSaid.get(id);
    if (!w) return b;
    const legs = b.legs.map((l) => {
      const s = w.legs.get(l.role);
      return s ? { ...l, state: s.state, muted: s.muted, held: s.held } : l;
    });
    return { ...b, legs };
  }

  async function loadBridge(id) {
    try {
      let b = await api("/api/v1/bridges/" + encodeURIComponent(id));
      if (readIsBehind(id, b)) {
        const n = (staleReads.get(id) || 0) + 1;
        staleReads.set(id, n);
        if (n <= STALE_RETRIES) {
          if (!rereads.has(id)) {
            rereads.set(id, setTimeout(() => { rereads.delete(id); loadBridge(id); }, STALE_RETRY_MS));
          }
          const known = calls.get(id);
          if (known && (known.state === "ended" || known.state === "failed")) return; // no controls back
          b = withStreamLegs(id, b);
          bridges.set(id, b);
          renderCall(id);
          return;
        }
      }
      // the read agrees with the stream (or kept disagreeing for 5 s): the read is the truth now
      staleReads.delete(id);
      streamSaid.delete(id);
      bridges.set(id, b);
      upsertCall(summaryOf(b));
      renderCall(id);
    } catch (err) {
      if (err.status !== 404) showError($("#calls-msg"), err);
    }
  }

  // Several events for one call arrive together: fetch the bridge once per burst.
  const pending = new Map();
  function refreshSoon(id) {
    if (pending.has(id)) return;
    pending.set(id, setTimeout(() => { pending.delete(id); loadBridge(id); }, 120));
  }
  let listTimer = null;
  function reloadListSoon() {
    if (listTimer) return;
    listTimer = setTimeout(() => { listTimer = null; loadCalls(); }, 200);
  }

  const callsBox = $("#calls");

  // Cards are rebuilt on every event: the button that had the keyboard focus gets it back (the
  // same call, party row, action or label), so a keyboard user is not thrown out mid-call.
  function focusedButton() {
    const f = document.activeElement;
    if (!f || f.tagName !== "BUTTON" || !callsBox.contains(f)) return null;
    const card = f.closest("[data-call]");
    const row = f.closest("tr[data-role]");
    return { call: card && card.dataset.call, role: row && row.dataset.role, action: f.dataset.action || null,
      text: f.textContent };
  }
  function refocus(key) {
    if (!key || !key.call) return;
    const card = callsBox.querySelector('[data-call="' + CSS.escape(key.call) + '"]');
    if (!card) return;
    const scope = key.role ? card.querySelector('tr[data-role="' + CSS.escape(key.role) + '"]') || card : card;
    const buttons = [...scope.querySelectorAll("button")];
    const match = buttons.find((b) => key.action && b.dataset.action === key.action) ||
      buttons.find((b) => b.textContent === key.text);
    if (match && !match.disabled) match.focus();
  }

  function renderCalls() {
    const key = focusedButton();
    const ids = [...calls.values()]
      .sort((a, b) => String(b.created_at).localeCompare(String(a.created_at)))
      .map((c) => c.id);
    const nodes = ids.map((id) => callNode(id));
    callsBox.replaceChildren(...nodes);
    $("#calls-empty").hidden = ids.length > 0;
    refocus(key);
  }

  function renderCall(id) {
    const old = callsBox.querySelector('[data-call="' + CSS.escape(id) + '"]');
    if (!old) { renderCalls(); return; }
    const key = focusedButton();
    old.replaceWith(callNode(id));
    refocus(key);
  }

  function callNode(id) {
    const c = calls.get(id);
    const b = bridges.get(id);
    const active = ACTIVE.has(c.state);
    const card = el("article", { class: "card call state-" + c.state, "data-call": id, "data-state": c.state });
    const head = el("div", { class: "call-head" },
      el("span", { class: "badge state", "data-state": c.state, text: label(CALL_STATE, c.state) }),
      el("strong", { text: label(KIND, c.kind) }),
      c.unit_code ? el("span", { class: "unit", text: unitName(c.unit_code) }) : null,
      c.incident_id ? el("span", { class: "incident", text: "警情 " + c.incident_id }) : null,
      el("span", { class: "time", text: fmtTime(c.created_at) }),
      en(id));
    card.append(head);
    if (c.end_reason && !active) {
      card.append(el("p", { class: "meta" }, "结束原因：" + reasonText(c.end_reason) + " ", en(c.end_reason)));
    }
    if (c.resumed_at) {
      const gap = c.gap_started_at ? Math.max(0, (Date.parse(c.resumed_at) - Date.parse(c.gap_started_at)) / 1000) : null;
      const secs = gap === null ? "" : "，中断 " + gap.toFixed(1) + " 秒";
      card.append(el("p", { class: "meta warn", "data-resumed": "1",
        text: "服务重启后已恢复通话" + secs + " (carried on after a restart" + (gap === null ? "" : ", " + gap.toFixed(1) + " s of silence") + ")" }));
    } else if (c.interrupted) {
      card.append(el("p", { class: "meta warn", text: "服务重启中断的通话 (interrupted by a restart)" }));
    }

    if (b) {
      const table = el("table", { class: "table legs" });
      table.append(el("thead", {}, el("tr", {},
        el("th", { text: "角色" }), el("th", { text: "号码" }), el("th", { text: "状态" }),
        el("th", { text: "拨号记录" }), active ? el("th", { text: "操作" }) : null)));
      const tbody = el("tbody");
      for (const leg of b.legs) tbody.append(legRow(b, leg, active));
      table.append(tbody);
      card.append(table);
    } else if (c.parties) {
      const p = Object.entries(c.parties).map(([r, n]) => label(ROLE, r) + " " + (n || "—")).join("　");
      card.append(el("p", { class: "meta", text: p }));
    }

    const tools = el("div", { class: "call-tools" });
    if (active && c.kind === "bridge") {
      const end = el("button", { type: "button", class: "danger", text: "结束通话", title: "end the call for everyone" });
      end.addEventListener("click", () => act(id, "/api/v1/bridges/" + encodeURIComponent(id) + "/end", end));
      tools.append(end);
    }
    const segments = c.recordings && c.recordings.length ? c.recordings : (c.recording_id ? [c.recording_id] : []);
    segments.forEach((recId, i) => {
      const part = segments.length > 1 ? "（第" + (i + 1) + "段）" : "";
      const play = el("button", { type: "button", class: "small", text: "播放录音" + part, "data-segment": String(i + 1),
        title: "play the recording (mixed track)" + (segments.length > 1 ? ", segment " + (i + 1) : "") });
      play.addEventListener("click", () => playRecording(recId, id, play));
      tools.append(play);
    });
    for (const hook of bridgeToolHooks) hook(c, b, tools, active);
    if (tools.children.length) card.append(tools);
    return card;
  }

  function legRow(b, leg, active) {
    const tr = el("tr", { "data-role": leg.role, "data-leg-state": leg.state });
    const flags = [];
    if (leg.muted) flags.push("已静音");
    if (leg.held) flags.push("保持中");
    tr.append(
      el("td", {}, label(ROLE, leg.role), " ", en(leg.role)),
      el("td", { text: leg.number || "—" }),
      el("td", {}, el("span", { class: "badge leg", "data-state": leg.state, text: label(LEG_STATE, leg.state) }),
        flags.length ? " " + flags.join("、") : ""),
      el("td", { class: "attempts" }, ...leg.attempts.map((a) =>
        el("div", {}, a.number + (a.label ? "（" + a.label + "）" : "") + "：" +
          (a.result ? label(RESULT, a.result) : "进行中") + (a.sip_status ? " " : ""),
        a.sip_status ? en("SIP " + a.sip_status) : null))),
    );
    if (active) {
      const cell = el("td", { class: "leg-actions" });
      for (const [action, zh, english] of ACTIONS) {
        if (!actionUseful(action, leg)) continue;
        const btn = el("button", { type: "button", class: "small", text: zh, title: english, "data-action": action });
        const path = "/api/v1/bridges/" + encodeURIComponent(b.id) + "/legs/" + leg.role + "/" + action;
        btn.addEventListener("click", () => act(b.id, path, btn));
        cell.append(btn);
      }
      tr.append(cell);
    }
    return tr;
  }

  function actionUseful(action, leg) {
    const live = leg.state === "connected";
    switch (action) {
      case "hangup": return live || ["dialing", "confirming", "waiting"].includes(leg.state);
      case "redial": return leg.state === "left" || leg.state === "unreachable";
      case "mute": return live && !leg.muted;
      case "unmute": return live && leg.muted;
      case "hold": return live && !leg.held;
      case "unhold": return live && leg.held;
      default: return false;
    }
  }

  async function act(id, path, btn) {
    btn.disabled = true;
    hideMsg($("#calls-msg"));
    try {
      const b = await api(path, { method: "POST" });
      bridges.set(b.id, b);
      upsertCall(summaryOf(b));
      renderCall(b.id);
      if (path.endsWith("/end") && ACTIVE.has(b.state)) {
        showMsg($("#calls-msg"), "info", "已请求结束通话，正在释放线路…", "end requested; waiting for the lines to clear");
      }
    } catch (err) {
      showError($("#calls-msg"), err);
      btn.disabled = false;
      refreshSoon(id);
    }
  }

  $("#calls-refresh").addEventListener("click", loadCalls);

  // ---------- hooks for views in their own files (bridge_units.js) ----------
  const bridgeToolHooks = [];
  function showBridge(b) {
    bridges.set(b.id, b);
    upsertCall(summaryOf(b));
    renderCall(b.id);
  }
  window.linkcallConsole = {
    api, el, en, showMsg, showError, hideMsg, unitName,
    units: () => units,
    fillUnitSelect,
    showBridge,
    addBridgeTools(hook) { bridgeToolHooks.push(hook); },
  };

  // ---------- recordings (fetched with the header, played from a blob URL) ----------
  let blobUrl = null;
  async function playRecording(recId, callId, btn) {
    btn.disabled = true;
    hideMsg($("#calls-msg"));
    try {
      const resp = await api("/api/v1/recordings/" + encodeURIComponent(recId) + "/audio?track=mixed", { raw: true });
      const blob = await resp.blob();
      if (blobUrl) URL.revokeObjectURL(blobUrl);
      blobUrl = URL.createObjectURL(blob);
      const audio = $("#player-audio");
      audio.src = blobUrl;
      $("#player-download").href = blobUrl;
      $("#player-download").setAttribute("download", callId + "-mixed.wav");
      $("#player-title").replaceChildren(el("span", { text: "录音 " }), en(callId));
      $("#player").hidden = false;
      audio.play().catch(() => {}); // autoplay may be refused; the controls stay
    } catch (err) {
      showError($("#calls-msg"), err);
    } finally {
      btn.disabled = false;
    }
  }

  // ---------- live events: fetch() + ReadableStream (EventSource cannot send headers) ----------
  let lastEventId = null;
  let streamCtl = null;
  let retryMs = 3000;
  let everConnected = false;

  function setLive(state, text) {
    const live = $("#live");
    live.className = "live " + state;
    live.dataset.state = state;
    live.textContent = text;
  }

  function stopEvents() {
    if (streamCtl) streamCtl.abort();
    streamCtl = null;
    setLive("off", "实时：未连接");
  }

  function startEvents() {
    stopEvents();
    const ctl = new AbortController();
    streamCtl = ctl;
    runEvents(ctl).catch(() => {});
  }

  let attemptCtl = null; // the current connection; aborted when the browser goes offline
  let wake = null;        // ends the wait before a reconnect early (browser back online)

  async function runEvents(ctl) {
    while (!ctl.signal.aborted && token) {
      const attempt = new AbortController();
      attemptCtl = attempt;
      const stop = () => attempt.abort();
      ctl.signal.addEventListener("abort", stop, { once: true });
      try {
        const headers = { Authorization: "Bearer " + token, Accept: "text/event-stream" };
        if (lastEventId != null) headers["Last-Event-ID"] = lastEventId;
        const resp = await fetch("/api/v1/events", { headers, signal: attempt.signal, cache: "no-store" });
        if (resp.status === 401) { onUnauthorized(); return; }
        if (!resp.ok || !resp.body) throw new Error("HTTP " + resp.status);
        setLive("on", "实时：已连接");
        if (everConnected) reloadListSoon(); // catch up on anything the ring no longer holds
        everConnected = true;
        await readStream(resp.body, attempt);
      } catch (e) {
        // dropped, refused or aborted: retry below unless stopped
      } finally {
        ctl.signal.removeEventListener("abort", stop);
        attemptCtl = null;
      }
      if (ctl.signal.aborted) return;
      setLive("retry", "实时：重新连接中…");
      await new Promise((resolve) => { wake = resolve; setTimeout(resolve, retryMs); });
      wake = null;
    }
  }
  window.addEventListener("offline", () => { if (attemptCtl) attemptCtl.abort(); });
  window.addEventListener("online", () => { if (wake) wake(); });

  async function readStream(body, ctl) {
    const reader = body.pipeThrough(new TextDecoderStream()).getReader();
    let buf = "";
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) return;
        buf += value.replace(/\r\n?/g, "\n");
        let cut;
        while ((cut = buf.indexOf("\n\n")) >= 0) {
          const block = buf.slice(0, cut);
          buf = buf.slice(cut + 2);
          handleBlock(block);
        }
      }
    } finally {
      if (ctl.signal.aborted) reader.cancel().catch(() => {});
    }
  }

  function handleBlock(block) {
    let id = null, type = "message";
    const data = [];
    for (const line of block.split("\n")) {
      if (!line || line.startsWith(":")) continue;
      const i = line.indexOf(":");
      const field = i < 0 ? line : line.slice(0, i);
      let val = i < 0 ? "" : line.slice(i + 1);
      if (val.startsWith(" ")) val = val.slice(1);
      if (field === "id") id = val;
      else if (field === "event") type = val;
      else if (field === "data") data.push(val);
      else if (field === "retry" && /^\d+$/.test(val)) retryMs = Number(val);
    }
    if (id != null) lastEventId = id;
    if (!data.length) return;
    let payload;
    try { payload = JSON.parse(data.join("\n")); } catch (e) { return; }
    onEvent(type, payload);
  }

  function onEvent(type, ev) {
    document.dispatchEvent(new CustomEvent("linkcall:event", { detail: { type, data: ev } }));
    const id = ev.call_id;
    if (!id) return;
    noteStreamEvent(type, ev);
    const known = calls.get(id);
    if (!known) { reloadListSoon(); return; }
    if (type === "call.state") {
      upsertCall({ id, state: ev.state, end_reason: ev.end_reason });
      if (!ACTIVE.has(ev.state) && $("#calls-msg").classList.contains("info")) hideMsg($("#calls-msg"));
      if (ev.kind === "bridge" && known.kind !== "bridge") upsertCall({ id, kind: "bridge" });
    }
    const kind = calls.get(id).kind;
    if (kind === "bridge") refreshSoon(id);
    else if (type.startsWith("recording.")) reloadListSoon();
    renderCall(id);
  }

  // ---------- duty ----------
  // ISO week (e.g. 2026-W49) of today in the county's zone, plus `offset` weeks.
  function isoWeek(offset) {
    const parts = new Intl.DateTimeFormat("en-CA", { timeZone: ZONE, year: "numeric", month: "2-digit", day: "2-digit" })
      .formatToParts(new Date());
    const get = (t) => Number(parts.find((p) => p.type === t).value);
    const d = new Date(Date.UTC(get("year"), get("month") - 1, get("day") + 7 * offset));
    const dow = d.getUTCDay() || 7;
    d.setUTCDate(d.getUTCDate() + 4 - dow); // the week's Thursday decides its year
    const yearStart = new Date(Date.UTC(d.getUTCFullYear(), 0, 1));
    const week = Math.ceil(((d - yearStart) / 86400000 + 1) / 7);
    return d.getUTCFullYear() + "-W" + String(week).padStart(2, "0");
  }

  $("#duty-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const code = $("#duty-unit").value;
    const msg = $("#duty-msg");
    hideMsg(msg);
    const table = $("#duty-table");
    if (!code) { showMsg(msg, "error", "请先选择单位。", "choose a unit"); return; }
    try {
      const dl = await api("/api/v1/units/" + encodeURIComponent(code) + "/dial-list");
      $("#duty-meta").replaceChildren(
        el("span", { text: unitName(code) + "　周次 " + dl.week + "　" +
          (dl.roster_version == null ? "本周未报备值班表，仅有备用号码" : "值班表第 " + dl.roster_version + " 版") }),
        " ", en("as of " + fmtTime(dl.at)));
      const tbody = table.querySelector("tbody");
      tbody.replaceChildren(...dl.entries.map((e) => el("tr", {},
        el("td", { text: String(e.position) }), el("td", { text: e.display || e.number }),
        el("td", {}, label(DUTY_ROLE, e.role), " ", en(e.role)), el("td", { text: e.name || "—" }))));
      table.hidden = false;
      if (!dl.entries.length) showMsg(msg, "error", "该单位当前没有可拨打的号码。", "no number to dial");
    } catch (err) {
      table.hidden = true;
      $("#duty-meta").textContent = "";
      showError(msg, err);
    }
  });

  async function loadMissing() {
    const msg = $("#missing-msg");
    hideMsg(msg);
    const week = $("#missing-week").value.trim();
    const q = week ? "?week=" + encodeURIComponent(week) : "";
    try {
      const res = await api("/api/v1/rosters/missing" + q);
      $("#missing-meta").replaceChildren(el("span", {
        text: res.week + "：" + (res.units.length ? res.units.length + " 个单位未报备" : "全部单位均已报备"),
      }));
      $("#missing-list").replaceChildren(...res.units.map((u) =>
        el("li", {}, el("strong", { text: u.code }), " " + u.name + " ",
          en(u.kind === "township" ? "乡镇 township" : "联动单位 linkage"))));
    } catch (err) {
      $("#missing-list").replaceChildren();
      $("#missing-meta").textContent = "";
      showError(msg, err);
    }
  }
  $("#missing-form").addEventListener("submit", (ev) => { ev.preventDefault(); loadMissing(); });
  $("#week-this").addEventListener("click", () => { $("#missing-week").value = isoWeek(0); loadMissing(); });
  $("#week-next").addEventListener("click", () => { $("#missing-week").value = isoWeek(1); loadMissing(); });

  // ---------- stats ----------
  function localDate(offsetDays) {
    const parts = new Intl.DateTimeFormat("en-CA", { timeZone: ZONE, year: "numeric", month: "2-digit", day: "2-digit" })
      .formatToParts(new Date());
    const get = (t) => Number(parts.find((p) => p.type === t).value);
    const d = new Date(Date.UTC(get("year"), get("month") - 1, get("day") + offsetDays));
    return d.toISOString().slice(0, 10);
  }
  function nextDay(date) {
    const d = new Date(date + "T00:00:00Z");
    d.setUTCDate(d.getUTCDate() + 1);
    return d.toISOString().slice(0, 10);
  }
  $("#stats-from").value = localDate(0).slice(0, 8) + "01";
  $("#stats-to").value = localDate(0);

  $("#stats-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const msg = $("#stats-msg");
    hideMsg(msg);
    const from = $("#stats-from").value, to = $("#stats-to").value;
    if (!from || !to || to < from) { showMsg(msg, "error", "请选择有效的日期范围。", "from ≤ to"); return; }
    // whole days in the county's zone (UTC+8), `to` inclusive
    const q = "?from=" + encodeURIComponent(from + "T00:00:00+08:00") +
      "&to=" + encodeURIComponent(nextDay(to) + "T00:00:00+08:00");
    let s;
    try {
      s = await api("/api/v1/surveys/stats" + q);
    } catch (err) {
      $("#stats-out").hidden = true;
      if (err.status === 403) showMsg(msg, "error", "满意度统计需要督导员或管理员令牌。", "needs a supervisor or admin token");
      else showError(msg, err);
      return;
    }
    const t = s.total;
    const pct = (v) => (v == null ? "—" : v + "%");
    $("#st-effective").textContent = String(t.effective);
    $("#st-rate").textContent = pct(t.satisfaction_pct);
    $("#st-unrate").textContent = pct(t.unsatisfied_pct);
    $("#st-finished").textContent = String(t.finished);
    $("#st-noanswer").textContent = String(t.no_answer);
    $("#st-cancelled").textContent = String(t.cancelled);
    const answers = Object.keys({ satisfied: 0, basically_satisfied: 0, unsatisfied: 0, ...t.answers });
    $("#st-answers tbody").replaceChildren(...answers.map((a) => el("tr", {},
      el("td", {}, label(ANSWER, a), " ", en(a)), el("td", { text: String(t.answers[a] || 0) }),
      el("td", { text: pct(t.answer_pct[a]) }))));
    $("#st-units tbody").replaceChildren(...s.by_unit.map((u) => el("tr", {},
      el("td", { text: u.unit_code ? u.unit_code + " " + unitName(u.unit_code) : "（未关联单位）" }),
      el("td", { text: String(u.effective) }), el("td", { text: pct(u.satisfaction_pct) }),
      el("td", { text: pct(u.unsatisfied_pct) }))));
    $("#stats-out").hidden = false;
  });

  // ---------- shared with the views in their own files (unit.js, ...) ----------
  window.linkcall = {
    api, el, en, label, fmtTime, isoWeek, localDate, nextDay, problemText, showMsg, showError,
    hideMsg, showView, newKey, reasonText, unitName, units: () => units, loadUnits,
    vocab: {
      CALL_STATE, LEG_STATE, ROLE, KIND, RESULT, DUTY_ROLE, ANSWER, ROLE_NAME, FIELD_ERROR_TYPE,
      INCIDENT_STATE, CATEGORY,
    },
    me: () => $("#whoami").dataset.role || null,
  };

  // ---------- start ----------
  applyRole(null);
  // after every deferred view script has run (they listen for linkcall:login)
  if (token) document.addEventListener("DOMContentLoaded", () => login(token), { once: true });
})();
