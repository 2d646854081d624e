// linkcall console: 追加单位 / 更换单位 on a live bridge card (issue 12).
// A card is redrawn on every event, so the form lives in one panel outside the cards: the
// buttons on a card open it for that bridge. Texts from the API go in through textContent.
"use strict";

(function () {
  const lc = window.linkcallConsole;
  if (!lc) return;
  const { el, en } = lc;

  const panel = el("div", { class: "card unit-panel", id: "unit-panel", hidden: true });
  const title = el("strong", { id: "unit-panel-title" });
  const select = el("select", { id: "unit-panel-unit", name: "unit" });
  const number = el("input", {
    id: "unit-panel-number", name: "number", type: "text", placeholder: "号码 / number，如 0833-4201234转8001",
  });
  const roleSelect = el("select", { id: "unit-panel-role", name: "role" });
  const ok = el("button", { type: "button", id: "unit-panel-ok", text: "确定" });
  const cancel = el("button", { type: "button", class: "small", id: "unit-panel-cancel", text: "取消" });
  const msg = el("div", { class: "msg", role: "status", hidden: true });
  panel.append(
    el("p", {}, title),
    el("div", { class: "row" },
      el("label", { htmlFor: "unit-panel-unit" }, "单位 ", en("unit")), select,
      el("label", { htmlFor: "unit-panel-number" }, "或号码 ", en("or a number")), number),
    el("div", { class: "row", id: "unit-panel-role-row" },
      el("label", { htmlFor: "unit-panel-role" }, "更换哪个单位 ", en("which unit leg")), roleSelect),
    el("div", { class: "row" }, ok, cancel),
    msg,
  );
  const anchor = document.querySelector("#calls-msg");
  anchor.parentNode.insertBefore(panel, anchor);

  let target = null; // { bridgeId, mode: "add" | "replace" }

  function open(bridge, mode) {
    target = { bridgeId: bridge.id, mode };
    lc.fillUnitSelect(select, true);
    number.value = "";
    lc.hideMsg(msg);
    const unitLegs = bridge.legs.filter((l) => l.role.startsWith("unit"));
    roleSelect.replaceChildren(...unitLegs.map((l) =>
      el("option", { value: l.role, text: l.role + "（" + (l.number || "—") + "）" })));
    panel.querySelector("#unit-panel-role-row").hidden = mode !== "replace";
    title.replaceChildren(
      mode === "add" ? "追加单位 " : "更换单位 ",
      en(mode === "add" ? "add a unit to the call" : "swap a unit for another"),
    );
    ok.textContent = mode === "add" ? "追加并呼叫" : "挂断并改呼";
    panel.hidden = false;
    select.focus();
  }

  function close() { panel.hidden = true; target = null; }

  select.addEventListener("change", () => {
    number.disabled = select.value !== "";
    if (select.value) number.value = "";
  });
  cancel.addEventListener("click", close);
  ok.addEventListener("click", async () => {
    if (!target) return;
    const body = select.value ? { unit_code: select.value } : { number: number.value.trim() };
    if (!select.value && !body.number) {
      lc.showMsg(msg, "error", "请选择单位或填写号码。", "choose a unit or enter a number");
      return;
    }
    const id = encodeURIComponent(target.bridgeId);
    const path = target.mode === "add"
      ? "/api/v1/bridges/" + id + "/units"
      : "/api/v1/bridges/" + id + "/legs/" + encodeURIComponent(roleSelect.value || "unit") + "/replace";
    ok.disabled = true;
    try {
      const b = await lc.api(path, { method: "POST", json: body });
      lc.showBridge(b);
      close();
    } catch (err) {
      lc.showError(msg, err);
    } finally {
      ok.disabled = false;
    }
  });

  lc.addBridgeTools((call, bridge, tools, active) => {
    if (!active || call.kind !== "bridge" || !bridge) return;
    const add = el("button", { type: "button", class: "small", text: "追加单位", title: "add a unit", "data-tool": "add-unit" });
    add.addEventListener("click", () => open(bridge, "add"));
    tools.append(add);
    if (bridge.legs.some((l) => l.role.startsWith("unit"))) {
      const swap = el("button", { type: "button", class: "small", text: "更换单位", title: "replace a unit", "data-tool": "replace-unit" });
      swap.addEventListener("click", () => open(bridge, "replace"));
      tools.append(swap);
    }
  });
})();
