// linkcall console: 满意度趋势 (supervisor, admin) — the monthly satisfaction rate drawn by the
// page as SVG (no library, no CDN), breakdowns by unit, incident type and dispatcher with
// unreached and rework counts, and XLSX / CSV exports (GET /api/v1/surveys/stats).
"use strict";

(function () {
  const L = window.linkcall;
  const { api, el, en, showMsg, showError, hideMsg } = L;
  const $ = (sel) => document.querySelector(sel);
  const SVG = "http://www.w3.org/2000/svg";
  let query = "";

  function thisMonth(offset) {
    const today = L.localDate(0); // YYYY-MM-DD in the county's zone
    let y = Number(today.slice(0, 4)), m = Number(today.slice(5, 7)) + offset;
    while (m < 1) { m += 12; y -= 1; }
    while (m > 12) { m -= 12; y += 1; }
    return y + "-" + String(m).padStart(2, "0");
  }
  function monthAfter(ym) {
    let y = Number(ym.slice(0, 4)), m = Number(ym.slice(5, 7)) + 1;
    if (m > 12) { m = 1; y += 1; }
    return y + "-" + String(m).padStart(2, "0");
  }
  $("#tr-from").value = thisMonth(-11);
  $("#tr-to").value = thisMonth(0);

  const pct = (v) => (v == null ? "—" : v + "%");

  function svg(tag, attrs, text) {
    const node = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, String(v));
    if (text != null) node.textContent = text;
    return node;
  }

  // One bar per month: its height is the satisfaction rate, labelled with the figure and the
  // number of effective callbacks; a month without callbacks shows "无".
  function drawChart(months) {
    const W = 760, H = 280, left = 44, right = 12, top = 24, bottom = 48;
    const plotW = W - left - right, plotH = H - top - bottom;
    const root = svg("svg", { viewBox: "0 0 " + W + " " + H, width: "100%", role: "img",
      class: "trend", "aria-label": "月度满意率 " + months.map((m) => m.month + " " + pct(m.satisfaction_pct)).join("，") });
    for (const v of [0, 25, 50, 75, 100]) {
      const y = top + plotH * (1 - v / 100);
      root.append(svg("line", { x1: left, x2: W - right, y1: y, y2: y, class: "grid" }));
      root.append(svg("text", { x: left - 6, y: y + 4, class: "axis", "text-anchor": "end" }, v + "%"));
    }
    const step = plotW / Math.max(1, months.length);
    const barW = Math.min(48, step * 0.6);
    const points = [];
    months.forEach((m, i) => {
      const cx = left + step * (i + 0.5);
      const g = svg("g", { class: "month", "data-month": m.month, "data-pct": m.satisfaction_pct == null ? "" : m.satisfaction_pct,
        "data-effective": m.effective });
      g.append(svg("title", {}, m.month + "：满意率 " + pct(m.satisfaction_pct) + "，有效回访 " + m.effective));
      if (m.satisfaction_pct != null) {
        const v = Number(m.satisfaction_pct);
        const h = plotH * v / 100;
        g.append(svg("rect", { x: cx - barW / 2, y: top + plotH - h, width: barW, height: Math.max(h, 1), class: "bar" }));
        g.append(svg("text", { x: cx, y: top + plotH - h - 6, class: "value", "text-anchor": "middle" }, m.satisfaction_pct + "%"));
        points.push(cx + "," + (top + plotH - h));
      } else {
        g.append(svg("text", { x: cx, y: top + plotH - 6, class: "none", "text-anchor": "middle" }, "无"));
      }
      g.append(svg("text", { x: cx, y: H - bottom + 18, class: "axis", "text-anchor": "middle" }, m.month));
      g.append(svg("text", { x: cx, y: H - bottom + 34, class: "axis small", "text-anchor": "middle" }, "n=" + m.effective));
      root.append(g);
    });
    if (points.length > 1) root.append(svg("polyline", { points: points.join(" "), class: "line" }));
    $("#tr-chart").replaceChildren(root);
  }

  const HEAD = { unit: "单位", type: "警情类型", dispatcher: "接警调度员" };
  function breakdown(table, group, tallies, keyOf) {
    table.querySelector("thead").replaceChildren(el("tr", {},
      el("th", { text: HEAD[group] }), el("th", { text: "已完成" }), el("th", { text: "有效回访" }),
      el("th", { text: "满意率" }), el("th", { text: "不满意率" }), el("th", { text: "未接通" }),
      el("th", { text: "返工" })));
    table.querySelector("tbody").replaceChildren(...tallies.map((t) => el("tr", { "data-key": keyOf(t) || "" },
      el("td", { text: keyOf(t) ? (group === "unit" ? keyOf(t) + " " + L.unitName(keyOf(t)) : keyOf(t)) : "（无）" }),
      el("td", { text: String(t.finished) }), el("td", { text: String(t.effective) }),
      el("td", { text: pct(t.satisfaction_pct) }), el("td", { text: pct(t.unsatisfied_pct) }),
      el("td", { text: String(t.no_answer) }), el("td", { text: String(t.rework) }))));
  }

  function exportButtons() {
    for (const box of document.querySelectorAll("#tr-out .export")) {
      const group = box.dataset.group;
      box.replaceChildren(...["xlsx", "csv"].map((fmt) => {
        const b = el("button", { type: "button", class: "small", "data-format": fmt,
          text: "导出 " + fmt.toUpperCase(), title: "export " + group + " as " + fmt });
        b.addEventListener("click", () => download(group, fmt, b));
        return b;
      }));
    }
  }

  async function download(group, fmt, btn) {
    btn.disabled = true;
    try {
      const resp = await api("/api/v1/surveys/stats?" + query + "&format=" + fmt + "&group=" + group, { raw: true });
      const url = URL.createObjectURL(await resp.blob());
      const a = el("a", { href: url });
      a.setAttribute("download", "survey-stats-" + group + "." + fmt);
      document.body.append(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(url), 10000);
    } catch (err) {
      showError($("#tr-msg"), err);
    } finally {
      btn.disabled = false;
    }
  }

  $("#trend-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const msg = $("#tr-msg");
    hideMsg(msg);
    const from = $("#tr-from").value, to = $("#tr-to").value;
    if (!from || !to || to < from) { showMsg(msg, "error", "请选择有效的月份范围。", "from ≤ to"); return; }
    query = "from=" + encodeURIComponent(from + "-01T00:00:00+08:00") +
      "&to=" + encodeURIComponent(monthAfter(to) + "-01T00:00:00+08:00");
    let s;
    try {
      s = await api("/api/v1/surveys/stats?" + query);
    } catch (err) {
      $("#tr-out").hidden = true;
      if (err.status === 403) showMsg(msg, "error", "满意度统计需要督导员或管理员令牌。", "needs a supervisor or admin token");
      else showError(msg, err);
      return;
    }
    drawChart(s.by_month);
    $("#tr-months tbody").replaceChildren(...s.by_month.map((m) => el("tr", { "data-month": m.month },
      el("td", { text: m.month }), el("td", { text: String(m.effective) }),
      el("td", { text: pct(m.satisfaction_pct) }), el("td", { text: pct(m.unsatisfied_pct) }),
      el("td", { text: String(m.no_answer) }), el("td", { text: String(m.rework) }))));
    breakdown($("#tr-unit"), "unit", s.by_unit, (t) => t.unit_code);
    breakdown($("#tr-type"), "type", s.by_type, (t) => t.type);
    breakdown($("#tr-dispatcher"), "dispatcher", s.by_dispatcher, (t) => t.dispatcher);
    exportButtons();
    $("#tr-out").hidden = false;
    showMsg(msg, "info", "合计：有效回访 " + s.total.effective + "，满意率 " + pct(s.total.satisfaction_pct) +
      "，未接通 " + s.total.no_answer + "，返工 " + s.total.rework + "。", "total over the period");
  });
})();
