"""追加单位 and 更换单位 from a live bridge card (issue 12), with real phones.

Lab phones: caller 2001, dispatcher 2002, unit 2003; 2005 is added as a second unit, then the
first unit is swapped for 2006. (This lab joins units as they answer: LINKCALL_UNIT_CONFIRM
off; the key press is covered by tests/bridges/test_unit_phone_lab.py.)
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.bridges.conftest import BridgeLab, leg
from tests.console.conftest import Console

pytestmark = [pytest.mark.integration, pytest.mark.slow]

CALL = "#calls article.call"


def test_dispatcher_adds_a_second_unit_then_swaps_the_first_from_the_card(
    bridge_lab: BridgeLab, browser_page: Any
) -> None:
    phones = {u: bridge_lab.phone(u, tone_hz=hz) for u, hz in (
        ("2001", 400.0), ("2002", 1000.0), ("2003", 1800.0), ("2005", 2600.0), ("2006", 600.0)
    )}  # fmt: skip
    resp = bridge_lab.post(
        "/api/v1/bridges",
        json={"caller": {"number": "2001"}, "dispatcher": {"number": "2002"},
              "unit": {"number": "2003"}},
    )  # fmt: skip
    assert resp.status_code == 202, resp.text
    bid = resp.json()["id"]
    bridge_lab.wait_bridge(bid, lambda b: all(x["state"] == "connected" for x in b["legs"]))

    ui = Console(browser_page, bridge_lab.live.base_url)
    page = browser_page
    ui.open()
    ui.login(bridge_lab.live.tokens["dispatcher"])
    page.click("nav button[data-view='calls']")
    page.wait_for_selector(f"{CALL}[data-state='connected'] tr[data-role='unit']", timeout=20_000)

    page.click(f"{CALL} button[data-tool='add-unit']")
    page.wait_for_selector("#unit-panel:not([hidden])")
    page.fill("#unit-panel-number", "2005")
    page.click("#unit-panel-ok")
    page.wait_for_selector("#unit-panel", state="hidden")
    page.wait_for_selector(
        f"{CALL} tr[data-role='unit2'][data-leg-state='connected']", timeout=30_000
    )
    row = page.locator(f"{CALL} tr[data-role='unit2']")
    assert "联动单位2" in row.inner_text() and "2005" in row.inner_text()
    # leg controls work on the added unit too
    row.locator("button[data-action='mute']").click()
    page.wait_for_selector(f"{CALL} tr[data-role='unit2'] button[data-action='unmute']")
    body = bridge_lab.get(f"/api/v1/bridges/{bid}").json()
    assert leg(body, "unit2")["muted"] is True

    since = phones["2003"].event_count()
    page.click(f"{CALL} button[data-tool='replace-unit']")
    page.wait_for_selector("#unit-panel:not([hidden])")
    page.select_option("#unit-panel-role", "unit")
    page.fill("#unit-panel-number", "2006")
    page.click("#unit-panel-ok")
    phones["2003"].wait_closed(10, since)  # the first unit is hung up
    swapped = f"{CALL} tr[data-role='unit'][data-leg-state='connected']:has-text('2006')"
    page.wait_for_selector(swapped, timeout=30_000)
    body = bridge_lab.get(f"/api/v1/bridges/{bid}").json()
    assert [(a["number"], a["result"]) for a in leg(body, "unit")["attempts"]] == [
        ("2003", "answered"), ("2006", "answered")
    ]  # fmt: skip
    # a number the dial policy refuses: the panel says so, nothing is dialled
    page.click(f"{CALL} button[data-tool='add-unit']")
    page.fill("#unit-panel-number", "110")
    page.click("#unit-panel-ok")
    page.wait_for_selector("#unit-panel .msg.error")
    assert "号码不可拨打" in page.locator("#unit-panel .msg").inner_text()
    page.click("#unit-panel-cancel")
    assert bridge_lab.post(f"/api/v1/bridges/{bid}/end").status_code == 200
    # the browser logs the refused request (422) itself; the page raised nothing
    assert [e for e in ui.errors if "status of 422" not in e] == [], ui.errors
