// linkcall console: 来电 — inbound calls ringing the dispatcher seats and the one this seat
// answered, driven by the event stream (call.state events of kind inbound); 加联动单位 brings a
// unit into a connected inbound call (POST /api/v1/bridges with {"caller": {"call_id"}}).
// Also remembers this dispatcher's seat for the session (the bridge form's 调度席位 as well).
"use strict";

(function () {
  const L = window.linkcall;
  const { api, el, en, label, fmtTime, showMsg, showError, hideMsg } = L;
  const $ = (sel) => document.querySelector(sel);
  const SEAT_KEY = "linkcall.seat";
  const STATE = { ringing: "振铃中", dialing: "振铃中", connected: "通话中", announcing: "播放提示",
    ended: "已结束", unanswered: "无人接听", handed_over: "已转接", failed: "未接通" };
  const live = new Map();   // call id -> {id, state, parties, created_at}
  const joined = new Set(); // inbound calls that became bridges from this panel
  let loading = null;

  // ---------- the seat, remembered for the session ----------
  function seat() { return sessionStorage.getItem(SEAT_KEY) || ""; }
  function setSeat(value, from) {
    const v = value.trim();
    if (v) sessionStorage.setItem(SEAT_KEY, v); else sessionStorage.removeItem(SEAT_KEY);
    if (from !== "panel") $("#in-seat").value = v;
    if (from !== "form" && !$("#f-dispatcher").value.trim()) $("#f-dispatcher").value = v;
    $("#in-seat-note").textContent = v ? "来电由本席接听时将高亮显示" : "";
    render();
  }
  $("#in-seat").addEventListener("change", () => setSeat($("#in-seat").value, "panel"));
  $("#seat-form").addEventListener("submit", (ev) => { ev.preventDefault(); setSeat($("#in-seat").value, "panel"); });
  $("#f-dispatcher").addEventListener("change", () => setSeat($("#f-dispatcher").value, "form"));
  document.addEventListener("linkcall:login", (ev) => {
    if (ev.detail.role === "unit") return;
    const s = seat();
    $("#in-seat").value = s;
    if (s && !$("#f-dispatcher").value.trim()) $("#f-dispatcher").value = s;
    refresh();
  });
  document.addEventListener("linkcall:logout", () => {
    sessionStorage.removeItem(SEAT_KEY);
    $("#in-seat").value = "";
    live.clear();
    render();
  });

  // ---------- live from the event stream ----------
  document.addEventListener("linkcall:event", (ev) => {
    const { type, data } = ev.detail;
    if (type !== "call.state" || !data.call_id) return;
    if (data.kind === "inbound" || live.has(data.call_id)) {
      const known = live.get(data.call_id) || { id: data.call_id, parties: {} };
      known.state = data.state;
      known.kind = data.kind;
      live.set(data.call_id, known);
      render();
      refresh();
    }
  });

  // the parties (who called, which seat answered) come from the call list; the event can run
  // ahead of the stored row, so a connected call without its seat yet is read again shortly
  let again = false;
  let retries = 0;
  async function refresh() {
    if (loading) { again = true; return loading; }
    loading = (async () => {
      try {
        const list = await api("/api/v1/calls?kind=inbound&limit=20");
        const fresh = new Set();
        for (const c of list) {
          fresh.add(c.id);
          const known = live.get(c.id);
          const state = known && known.state ? known.state : (c.state === "dialing" ? "ringing" : c.state);
          if (!["ringing", "connected", "announcing"].includes(state)) { live.delete(c.id); continue; }
          live.set(c.id, { ...(known || {}), id: c.id, state, parties: c.parties, created_at: c.created_at, kind: "inbound" });
        }
        for (const [id, c] of live) if (!fresh.has(id) && c.kind === "inbound" && !joined.has(id)) live.delete(id);
      } catch (err) {
        showError($("#in-msg"), err);
      } finally {
        loading = null;
        render();
        const incomplete = [...live.values()].some((c) => c.kind === "inbound" &&
          c.state === "connected" && !(c.parties && c.parties.dispatcher));
        if (again || (incomplete && retries < 20)) {
          retries = again ? 0 : retries + 1;
          again = false;
          setTimeout(refresh, 250);
        } else {
          retries = 0;
        }
      }
    })();
    return loading;
  }

  function render() {
    const box = $("#in-list");
    const calls = [...live.values()].filter((c) => c.kind === "inbound" && ["ringing", "connected", "announcing"].includes(c.state))
      .sort((a, b) => String(b.created_at).localeCompare(String(a.created_at)));
    // a re-render (events arrive any time) keeps what the dispatcher chose or typed, and the focus
    const keepFocus = document.activeElement && box.contains(document.activeElement) ? document.activeElement.id : null;
    const typed = new Map([...box.querySelectorAll("select[id], input[id]")].map((n) => [n.id, n.value]));
    box.replaceChildren(...calls.map(card));
    for (const [id, value] of typed) { const n = document.getElementById(id); if (n) n.value = value; }
    if (keepFocus && document.getElementById(keepFocus)) document.getElementById(keepFocus).focus();
    $("#in-empty").hidden = calls.length > 0;
    const ringing = calls.filter((c) => c.state === "ringing").length;
    const count = $("#inbound-count");
    count.textContent = ringing ? "（" + ringing + " 振铃）" : "";
    count.hidden = !ringing;
  }

  function card(c) {
    const mine = c.parties && c.parties.dispatcher && c.parties.dispatcher === seat();
    const article = el("article", { class: "card call inbound" + (mine ? " mine" : ""), "data-call": c.id,
      "data-state": c.state, "data-mine": String(Boolean(mine)) });
    article.append(el("div", { class: "call-head" },
      el("span", { class: "badge state", "data-state": c.state === "ringing" ? "ringing" : c.state, text: STATE[c.state] || c.state }),
      el("strong", { text: "来电 " + ((c.parties && c.parties.caller) || "…") }),
      c.parties && c.parties.dispatcher ? el("span", { text: "接听席位 " + c.parties.dispatcher + (mine ? "（本席）" : "") }) : null,
      c.created_at ? el("span", { class: "time", text: fmtTime(c.created_at) }) : null,
      en(c.id)));
    if (c.state === "connected") article.append(addUnitForm(c, mine));
    return article;
  }

  function addUnitForm(c, mine) {
    const id = "in-unit-" + c.id;
    const form = el("form", { class: "row add-unit", "data-call": c.id });
    const select = el("select", { id });
    select.append(el("option", { value: "", text: "（直接输入号码 / enter a number）" }));
    for (const u of L.units()) select.append(el("option", { value: u.code, text: u.code + " " + u.name }));
    const number = el("input", { id: id + "-number", inputMode: "tel", maxLength: 40, placeholder: "单位电话 / unit number" });
    const go = el("button", { type: "submit", class: "primary small-primary", text: "加联动单位", title: "add a unit to this call" });
    const msg = el("div", { class: "msg", role: "status", hidden: true });
    form.append(el("label", { htmlFor: id }, "联动单位 ", en("unit")), select,
      el("label", { htmlFor: id + "-number", class: "sr" }, "单位电话"), number, go, msg);
    if (!mine) form.append(el("span", { class: "meta", text: "（非本席接听）" }));
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      hideMsg(msg);
      const desk = (c.parties && c.parties.dispatcher) || seat();
      if (!select.value && !number.value.trim()) { showMsg(msg, "error", "请选择联动单位或填写号码。", "choose a unit or enter a number"); select.focus(); return; }
      const body = { caller: { call_id: c.id }, dispatcher: { number: desk },
        unit: select.value ? { unit_code: select.value } : { number: number.value.trim() } };
      go.disabled = true;
      try {
        await api("/api/v1/bridges", { method: "POST", json: body, headers: { "Idempotency-Key": L.newKey() } });
        joined.add(c.id);
        live.delete(c.id);
        render();
        showMsg($("#in-msg"), "ok", "已加入联动单位，正在呼叫；通话在“通话”页继续显示。", "unit being added: see the call list");
      } catch (err) {
        showError(msg, err);
        go.disabled = false;
      }
    });
    return form;
  }
})();
