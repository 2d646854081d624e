"""A dispatcher places a real three-way call from the console and watches it live.

Lab phones: caller 2001 (400 Hz), dispatcher seat 2002 (1000 Hz), the unit's duty phone 2003
(1800 Hz, the unit's fallback number since it has no roster).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from tests.bridges.conftest import BridgeLab
from tests.console.conftest import Console

pytestmark = [pytest.mark.integration, pytest.mark.slow]

CALL = "#calls article.call"


def _bridges(lab: BridgeLab) -> list[dict[str, Any]]:
    resp = lab.get("/api/v1/calls", params={"kind": "bridge"})
    assert resp.status_code == 200, resp.text
    return resp.json()  # type: ignore[no-any-return]


def test_dispatcher_bridges_three_phones_sees_them_live_controls_a_leg_and_ends_it(
    bridge_lab: BridgeLab, browser_page: Any, tmp_path: Path
) -> None:
    phones = {
        u: bridge_lab.phone(u, tone_hz=hz)
        for u, hz in (("2001", 400.0), ("2002", 1000.0), ("2003", 1800.0))
    }
    assert len(phones) == 3
    created = bridge_lab.post(
        "/api/v1/units",
        role="admin",
        json={"code": "L07", "name": "县供电公司", "kind": "linkage", "fallback_number": "2003"},
    )
    assert created.status_code == 201, created.text

    ui = Console(browser_page, bridge_lab.live.base_url)
    page = browser_page
    ui.open()
    ui.login(bridge_lab.live.tokens["dispatcher"])
    page.wait_for_selector("#whoami:has-text('调度员')")
    page.wait_for_selector("#live[data-state='on']")
    assert (
        page.evaluate("sessionStorage.getItem('linkcall.token')")
        == bridge_lab.live.tokens["dispatcher"]
    )
    page.wait_for_selector("#f-unit option[value='L07']", state="attached")
    page.evaluate("window.__sameDocument = true")  # gone if the page ever reloads

    page.fill("#f-caller", "2001")
    page.fill("#f-dispatcher", "2002")
    page.select_option("#f-unit", "L07")
    assert page.is_disabled("#f-unit-number")
    page.dblclick("#bridge-submit")  # a double click dials once

    page.wait_for_selector("#view-calls:not([hidden])")
    card = page.locator(CALL).first
    card.wait_for()
    # connected with three live legs, from the event stream (no reload, no refresh click)
    page.wait_for_selector(f"{CALL}[data-state='connected']", timeout=40_000)
    for role in ("caller", "dispatcher", "unit"):
        page.wait_for_selector(
            f"{CALL} tr[data-role='{role}'][data-leg-state='connected']", timeout=20_000
        )
    assert card.locator(".badge.state").inner_text() == "已接通"
    assert "县供电公司" in card.inner_text()
    assert "2003" in card.locator("tr[data-role='unit']").inner_text()
    assert "已接听" in card.locator("tr[data-role='unit'] .attempts").inner_text()
    assert page.evaluate("window.__sameDocument") is True
    bridges = _bridges(bridge_lab)
    assert len(bridges) == 1, bridges
    bridge_id = bridges[0]["id"]
    assert bridges[0]["unit_code"] == "L07"

    # leg control: mute the dispatcher seat, then unmute it
    seat = card.locator("tr[data-role='dispatcher']")
    seat.locator("button[data-action='mute']").click()
    page.wait_for_selector(f"{CALL} tr[data-role='dispatcher'] button[data-action='unmute']")
    assert "已静音" in seat.inner_text()
    assert bridge_lab.get(f"/api/v1/bridges/{bridge_id}").json()["legs"][1]["muted"] is True
    seat.locator("button[data-action='unmute']").click()
    page.wait_for_selector(f"{CALL} tr[data-role='dispatcher'] button[data-action='mute']")
    # hold the caller, then take them back
    caller = card.locator("tr[data-role='caller']")
    caller.locator("button[data-action='hold']").click()
    page.wait_for_selector(f"{CALL} tr[data-role='caller'] button[data-action='unhold']")
    assert "保持中" in caller.inner_text()
    caller.locator("button[data-action='unhold']").click()
    page.wait_for_selector(f"{CALL} tr[data-role='caller'] button[data-action='hold']")

    shot = tmp_path / "console-connected.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000

    time.sleep(1.0)  # a little audio in the recording
    card.locator("button.danger", has_text="结束通话").click()
    page.wait_for_selector(f"{CALL}[data-state='ended']", timeout=20_000)
    assert card.locator(".badge.state").inner_text() == "已结束"
    assert card.locator("button.danger").count() == 0
    assert card.locator("button[data-action]").count() == 0

    # the recording plays from a blob URL fetched with the Authorization header
    play = card.locator("button", has_text="播放录音")
    play.wait_for(timeout=20_000)
    page.wait_for_function(
        "() => document.querySelector('#calls article.call')?.dataset.state === 'ended'"
    )
    _wait_finalised(bridge_lab, bridge_id)
    card.locator("button", has_text="播放录音").click()
    page.wait_for_selector("#player:not([hidden])")
    assert page.get_attribute("#player-audio", "src").startswith("blob:")
    duration = page.evaluate(
        """() => new Promise((ok) => {
            const a = document.querySelector('#player-audio');
            if (a.readyState >= 1) return ok(a.duration);
            a.addEventListener('loadedmetadata', () => ok(a.duration), {once: true});
            a.addEventListener('error', () => ok(-1), {once: true});
        })"""
    )
    assert duration > 1.0, duration
    page.screenshot(path=str(tmp_path / "console-ended.png"), full_page=True)

    token = bridge_lab.live.tokens["dispatcher"]
    assert not [u for u in ui.requests if token in u], "the token leaked into a URL"
    base = bridge_lab.live.base_url
    assert not [u for u in ui.requests if not u.startswith((base, "blob:" + base))]
    assert ui.errors == [], ui.errors


def _wait_finalised(lab: BridgeLab, bridge_id: str) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        rec = lab.get(f"/api/v1/bridges/{bridge_id}").json()["recording_id"]
        if rec and lab.get(f"/api/v1/recordings/{rec}").json()["state"] == "finalised":
            return
        time.sleep(0.2)
    raise AssertionError("recording never finalised")
