// linkcall console: 审计 (supervisor, admin) — the recordings browser (per-track playback from
// blob URLs, health, the evidence package) and the audit log with filters.
"use strict";

(function () {
  const L = window.linkcall;
  const { api, el, en, fmtTime, showMsg, showError, hideMsg, nextDay } = L;
  const $ = (sel) => document.querySelector(sel);
  const TRACK = { mixed: "混音", caller: "群众", dispatcher: "调度席", unit: "联动单位", unit2: "联动单位2", unit3: "联动单位3", callee: "被叫", seat: "调度席" };
  const ACTION = {
    "recording.audio": "播放/下载录音", "recording.metadata": "查看录音信息", "recording.package": "下载证据包",
    "recording.list": "浏览录音列表", "roster.submit": "提交值班表", "roster.import": "导入值班表",
    "incident.create": "接警登记", "incident.divert": "分流", "incident.accept": "接收", "incident.close": "办结",
    "recording.hold": "设置法律保全", "recording.release": "解除法律保全",
    "recording.audio.refused": "播放/下载录音被拒", "recording.package.refused": "下载证据包被拒",
    "recording.purge": "按保留期限删除录音", "recording.purge_failed": "删除录音失败", "recording.verify": "录音校验",
    "recording.backup": "备份（全部录音）", "backup.restore": "从备份恢复",
    "bridge.create": "发起三方通话", "bridge.add_unit": "来电转三方通话", "bridge.unit.add": "加入联动单位",
    "bridge.unit.replace": "更换联动单位", "bridge.end": "结束三方通话",
    "roster.remind": "催报值班表", "unit.import": "导入单位",
    "unit.create": "新增单位", "unit.update": "修改单位", "token.create": "生成令牌", "token.revoke": "吊销令牌",
    "survey.create": "安排回访", "survey.cancel": "取消回访", "duty_check.start": "发起查岗",
  };
  const REC_STATE = { recording: "录音中", finalised: "已封存", interrupted: "中断后修复", failed: "失败" };
  let blobUrl = null;
  let auditQuery = "";
  let oldestId = null;

  document.addEventListener("linkcall:logout", () => {
    $("#rec-table tbody").replaceChildren();
    $("#rec-table").hidden = true;
    $("#au-table tbody").replaceChildren();
    $("#au-table").hidden = true;
    $("#rec-player").hidden = true;
    if (blobUrl) { URL.revokeObjectURL(blobUrl); blobUrl = null; }
  });

  function range(fromId, toId) {
    const p = new URLSearchParams();
    if ($(fromId).value) p.set("from", $(fromId).value + "T00:00:00+08:00");
    if ($(toId).value) p.set("to", nextDay($(toId).value) + "T00:00:00+08:00");
    return p;
  }

  // ---------- recordings ----------
  $("#rec-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    hideMsg($("#rec-msg"));
    const p = range("#rec-from", "#rec-to");
    if ($("#rec-unit").value.trim()) p.set("unit_code", $("#rec-unit").value.trim());
    if ($("#rec-incident").value.trim()) p.set("incident_id", $("#rec-incident").value.trim());
    p.set("limit", "100");
    let list;
    try { list = await api("/api/v1/recordings?" + p.toString()); } catch (err) { showError($("#rec-msg"), err); return; }
    $("#rec-table tbody").replaceChildren(...list.map(recRow));
    $("#rec-table").hidden = list.length === 0;
    if (!list.length) showMsg($("#rec-msg"), "info", "没有符合条件的录音。", "no recording matches");
  });

  function recRow(r) {
    const play = el("div", { class: "leg-actions" }, ...r.tracks.map((t) => {
      const b = el("button", { type: "button", class: "small", "data-track": t, text: TRACK[t] || t, title: "play the " + t + " track" });
      b.addEventListener("click", () => playTrack(r, t, b));
      return b;
    }));
    const pkg = el("button", { type: "button", class: "small", text: "下载证据包", title: "evidence package (zip)" });
    pkg.addEventListener("click", () => downloadPackage(r, pkg));
    const hold = el("button", { type: "button", class: "small", "data-hold": String(r.legal_hold),
      text: r.legal_hold ? "解除保全" : "法律保全", title: r.legal_hold ? "release the legal hold" : "put under legal hold" });
    hold.addEventListener("click", () => toggleHold(r, hold));
    const access = el("button", { type: "button", class: "small", text: "访问记录", title: "who accessed this recording" });
    access.addEventListener("click", () => {
      $("#au-type").value = "recording";
      $("#au-id").value = r.id;
      $("#au-action").value = "";
      $("#au-actor").value = "";
      $("#audit-form").requestSubmit();
    });
    return el("tr", { "data-recording": r.id, "data-state": r.state },
      el("td", { text: fmtTime(r.started_at) }), el("td", { text: L.label(L.vocab.KIND, r.call_kind) }),
      el("td", { text: r.unit_code ? r.unit_code + " " + L.unitName(r.unit_code) : "—" }),
      el("td", { text: r.incident_id || "—" }),
      el("td", { text: r.duration_s == null ? "—" : r.duration_s.toFixed(1) + " 秒" }),
      el("td", { text: REC_STATE[r.state] || r.state }),
      el("td", {}, el("span", { class: "badge", "data-state": r.health_ok === false ? "failed" : r.health_ok ? "connected" : "",
        text: r.health_ok === false ? "异常" : r.health_ok ? "正常" : "—" })),
      el("td", {}, play), el("td", {},
        r.legal_hold ? el("span", { class: "badge hold", title: r.hold_reason || "", text: "保全中 legal hold" }) : "",
        el("div", { class: "leg-actions" }, pkg, hold, access)));
  }

  async function playTrack(r, track, btn) {
    btn.disabled = true;
    hideMsg($("#rec-msg"));
    try {
      const resp = await api("/api/v1/recordings/" + encodeURIComponent(r.id) + "/audio?track=" + encodeURIComponent(track), { raw: true });
      const blob = await resp.blob();
      if (blobUrl) URL.revokeObjectURL(blobUrl);
      blobUrl = URL.createObjectURL(blob);
      $("#rec-audio").src = blobUrl;
      $("#rec-player-title").replaceChildren(el("span", { text: "录音（" + (TRACK[track] || track) + "） " }), en(r.call_id));
      $("#rec-player").hidden = false;
      $("#rec-player").dataset.track = track;
      $("#rec-audio").play().catch(() => {});
    } catch (err) {
      showError($("#rec-msg"), err);
    } finally {
      btn.disabled = false;
    }
  }

  // 法律保全: the retention purge never deletes a held recording (a reason is required)
  async function toggleHold(r, btn) {
    hideMsg($("#rec-msg"));
    let json = {};
    if (!r.legal_hold) {
      const reason = window.prompt("保全原因（例如案件编号） / reason for the legal hold");
      if (reason == null) return;
      if (!reason.trim()) { showMsg($("#rec-msg"), "error", "请填写保全原因。", "a reason is required"); return; }
      json = { reason: reason.trim() };
    } else if (!window.confirm("解除该录音的法律保全？解除后按保存期限处理。")) {
      return;
    }
    btn.disabled = true;
    try {
      await api("/api/v1/recordings/" + encodeURIComponent(r.id) + (r.legal_hold ? "/release" : "/hold"), { method: "POST", json });
      showMsg($("#rec-msg"), "ok", r.legal_hold ? "已解除法律保全。" : "已设置法律保全，保存期满也不会删除。",
        r.legal_hold ? "hold released" : "held: never purged");
      $("#rec-form").requestSubmit();
    } catch (err) {
      showError($("#rec-msg"), err);
      btn.disabled = false;
    }
  }

  async function downloadPackage(r, btn) {
    btn.disabled = true;
    hideMsg($("#rec-msg"));
    try {
      const resp = await api("/api/v1/recordings/" + encodeURIComponent(r.id) + "/package", { raw: true });
      const url = URL.createObjectURL(await resp.blob());
      const a = el("a", { href: url });
      a.setAttribute("download", "evidence-" + r.id + ".zip");
      document.body.append(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(url), 10000);
      showMsg($("#rec-msg"), "ok", "证据包已下载：解压后在目录内运行 sha256sum -c SHA256SUMS 校验。",
        "unzip, then run sha256sum -c SHA256SUMS in its folder");
    } catch (err) {
      showError($("#rec-msg"), err);
    } finally {
      btn.disabled = false;
    }
  }

  // ---------- audit log ----------
  function auditRow(e) {
    const resource = e.resource_type + (e.resource_id && e.resource_id !== "*" ? " " + e.resource_id : "");
    return el("tr", { "data-audit": String(e.id), "data-action": e.action },
      el("td", { text: fmtTime(e.at) }),
      el("td", {}, e.actor + " ", en(e.role)),
      el("td", {}, (ACTION[e.action] || e.action) + " ", en(e.action)),
      el("td", { text: resource }),
      el("td", { class: "detail-json", text: Object.keys(e.detail || {}).length ? JSON.stringify(e.detail) : "" }),
      el("td", { text: e.client || "" }));
  }

  async function fetchAudit(older) {
    hideMsg($("#au-msg"));
    const p = new URLSearchParams(auditQuery);
    if (older && oldestId) p.set("before_id", String(oldestId));
    let list;
    try { list = await api("/api/v1/audit?" + p.toString()); } catch (err) { showError($("#au-msg"), err); return; }
    const tbody = $("#au-table tbody");
    if (!older) tbody.replaceChildren();
    tbody.append(...list.map(auditRow));
    if (list.length) oldestId = list[list.length - 1].id;
    $("#au-table").hidden = tbody.children.length === 0;
    $("#au-more").hidden = list.length < 100;
    if (!tbody.children.length) showMsg($("#au-msg"), "info", "没有符合条件的审计记录。", "no entry matches");
  }

  $("#audit-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const p = range("#au-from", "#au-to");
    for (const [id, key] of [["#au-actor", "actor"], ["#au-action", "action"], ["#au-type", "resource_type"], ["#au-id", "resource_id"]]) {
      if ($(id).value.trim()) p.set(key, $(id).value.trim());
    }
    p.set("limit", "100");
    auditQuery = p.toString();
    oldestId = null;
    fetchAudit(false);
  });
  $("#au-more").addEventListener("click", () => fetchAudit(true));
})();
