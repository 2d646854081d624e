// 运行状态横幅 / Operations banner: low disk and recording verification problems.
// Reads GET /api/v1/ops/status with the console's token (sessionStorage, as console.js) every
// 30 s while signed in; shows nothing when all is well. Chinese first, English second.
(function () {
  "use strict";
  const TOKEN_KEY = "linkcall.token";
  const POLL_MS = 30000;
  const banner = document.getElementById("ops-banner");
  if (!banner) return;

  function line(kind, zh, en) {
    const p = document.createElement("p");
    p.className = "ops-line " + kind;
    p.textContent = zh + " ";
    const span = document.createElement("span");
    span.className = "en";
    span.textContent = en;
    p.appendChild(span);
    return p;
  }

  function render(status) {
    const lines = [];
    const disk = status.disk;
    if (disk && disk.low) {
      lines.push(line("error",
        `磁盘空间不足：剩余 ${disk.free_mb} MB，低于 ${disk.min_free_mb} MB。通话照常接通，录音可能不完整。`,
        `Low disk: ${disk.free_mb} MB free, under ${disk.min_free_mb} MB. Calls still connect; recordings may have gaps.`));
    }
    const v = status.verification;
    if (v && v.bad && v.bad.length) {
      lines.push(line("error",
        `录音校验发现 ${v.bad.length} 条录音有问题（共校验 ${v.checked} 条）：${v.bad.map((b) => b.recording_id).join("，")}`,
        `Recording verification: ${v.bad.length} of ${v.checked} with problems.`));
    }
    if (status.sip && !status.sip.ok) {
      lines.push(line("error", "SIP 未注册，无法拨打电话：" + status.sip.detail,
        "SIP not registered: calls cannot be placed."));
    }
    banner.replaceChildren(...lines);
    banner.hidden = lines.length === 0;
  }

  async function poll() {
    const token = sessionStorage.getItem(TOKEN_KEY);
    if (!token) { banner.hidden = true; return; }
    try {
      const resp = await fetch("/api/v1/ops/status", { headers: { Authorization: "Bearer " + token } });
      if (resp.ok) render(await resp.json());
    } catch (_e) { /* the next poll tries again */ }
  }

  document.addEventListener("DOMContentLoaded", () => {
    poll();
    setInterval(poll, POLL_MS);
    const form = document.getElementById("login");
    if (form) form.addEventListener("submit", () => setTimeout(poll, 500));
  });
})();
