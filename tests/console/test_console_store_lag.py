"""The console when the stored call lags behind the event stream.

The service publishes a leg's change at once and its writer thread stores it afterwards
(calls/records.py), so under load a console that reads the bridge on an event can read the row
as it was before the change. Here every bridge snapshot is stored 1.5 s late: the dispatcher
must still see the three legs connected, and the details that only the stored call has (the
unit's answered attempt) once the store catches up. Before the console re-read stale bridges,
a leg's row stayed "dialing" on screen for the rest of the call (the CI flake of
test_console_bridge.py).
"""

from __future__ import annotations

import time
from typing import Any

import pytest

import calls.records
from calls.snapshot_rows import save_bridge_snapshot
from tests.bridges.conftest import BridgeLab, leg
from tests.console.conftest import Console

pytestmark = [pytest.mark.integration, pytest.mark.slow]

CALL = "#calls article.call"
STORE_LAG_S = 1.5


def test_leg_rows_follow_the_stream_while_the_store_lags_and_catch_up_with_it(
    bridge_lab: BridgeLab, browser_page: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    def late_snapshot(*args: Any) -> None:
        time.sleep(STORE_LAG_S)  # the writer thread: a slow database
        save_bridge_snapshot(*args)

    monkeypatch.setattr(calls.records, "save_bridge_snapshot", late_snapshot)
    for user, hz in (("2001", 400.0), ("2002", 1000.0), ("2003", 1800.0)):
        bridge_lab.phone(user, tone_hz=hz)
    created = bridge_lab.post(
        "/api/v1/units",
        role="admin",
        json={"code": "L08", "name": "县自来水公司", "kind": "linkage", "fallback_number": "2003"},
    )
    assert created.status_code == 201, created.text

    page = browser_page
    ui = Console(page, bridge_lab.live.base_url)
    ui.open()
    ui.login(bridge_lab.live.tokens["dispatcher"])
    page.wait_for_selector("#live[data-state='on']")
    page.click("button[data-view='calls']")
    page.wait_for_selector("#view-calls:not([hidden])")
    resp = bridge_lab.post(
        "/api/v1/bridges",
        json={
            "caller": {"number": "2001"},
            "dispatcher": {"number": "2002"},
            "unit": {"unit_code": "L08"},
        },
    )
    assert resp.status_code == 202, resp.text
    bridge_id = resp.json()["id"]
    page.evaluate("window.__sameDocument = true")

    # what the dispatcher sees: every leg connected, well before the store has caught up
    page.wait_for_selector(f"{CALL}[data-state='connected']", timeout=40_000)
    for role in ("caller", "dispatcher", "unit"):
        page.wait_for_selector(
            f"{CALL} tr[data-role='{role}'][data-leg-state='connected']", timeout=20_000
        )
    # the stored call reaches the same state, and the card then shows what only it holds
    body = bridge_lab.wait_bridge(
        bridge_id, lambda b: all(x["state"] == "connected" for x in b["legs"]), timeout=30
    )
    assert leg(body, "unit")["attempts"][-1]["result"] == "answered"
    unit_row = page.locator(f"{CALL} tr[data-role='unit'] .attempts")
    page.wait_for_function(
        "() => document.querySelector(\"#calls article.call tr[data-role='unit'] .attempts\")"
        "?.textContent.includes('已接听')",
        timeout=10_000,
    )
    assert "2003" in unit_row.inner_text()
    assert page.evaluate("window.__sameDocument") is True

    ended = bridge_lab.post(f"/api/v1/bridges/{bridge_id}/end")
    assert ended.status_code == 200, ended.text
    page.wait_for_selector(f"{CALL}[data-state='ended']", timeout=20_000)
    # a read still saying "connected" must not bring the controls back once the stream said ended
    time.sleep(STORE_LAG_S + 1.0)
    assert page.locator(f"{CALL}[data-state='ended']").count() == 1
    assert page.locator(f"{CALL} button[data-action]").count() == 0
    assert ui.errors == [], ui.errors
