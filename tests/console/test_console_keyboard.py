"""Keyboard first: a dispatcher signs in, fills the bridge form and dials without a mouse (Tab
order: 群众号码 → 调度席位 → 联动单位 → 单位电话 → 警情编号 → 拨打), then reaches 结束通话 with Tab
and ends the call with Enter; every form control has a label."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import LiveService
from tests.console.conftest import Console

pytestmark = [pytest.mark.integration]


def test_the_bridge_form_and_the_call_controls_work_from_the_keyboard(
    live_api: LiveService, browser_page: Any
) -> None:
    page = browser_page
    ui = Console(page, live_api.base_url)
    ui.open()
    page.focus("#token")
    page.keyboard.type(live_api.tokens["dispatcher"])
    page.keyboard.press("Enter")
    page.wait_for_selector("#live[data-state='on']")

    unlabeled = page.evaluate(
        """() => [...document.querySelectorAll('input, select, textarea')]
            .filter(n => n.type !== 'hidden' && n.offsetParent !== null)
            .filter(n => !(n.labels && n.labels.length) && !n.getAttribute('aria-label'))
            .map(n => n.id || n.name)"""
    )
    assert unlabeled == [], unlabeled

    page.focus("#f-caller")
    order = []
    for _ in range(6):
        order.append(page.evaluate("document.activeElement.id"))
        page.keyboard.press("Tab")
    assert order == ["f-caller", "f-dispatcher", "f-unit", "f-unit-number", "f-incident",
                     "bridge-submit"]  # fmt: skip

    page.focus("#f-caller")
    page.keyboard.type("2001")
    page.keyboard.press("Tab")
    page.keyboard.type("2002")
    page.keyboard.press("Tab")
    page.keyboard.press("Tab")  # the select stays on 直接输入号码
    page.keyboard.type("2003")
    page.keyboard.press("Tab")
    page.keyboard.type("JQ-K1")
    page.keyboard.press("Enter")  # submits the form
    page.wait_for_selector("#calls article.call[data-state='dialing']")

    end = page.locator("#calls article.call button.danger")
    for _ in range(40):  # Tab until 结束通话 has the focus
        if page.evaluate("document.activeElement.classList.contains('danger')"):
            break
        page.keyboard.press("Tab")
    assert end.evaluate("b => b === document.activeElement")
    page.keyboard.press("Enter")
    page.wait_for_selector("#calls article.call[data-state='ended']", timeout=20_000)
    assert ui.errors == [], ui.errors
