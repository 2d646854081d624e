"""来电 in a real browser with the SIP lab (Kamailio, baresip phones): a citizen calls the
center, the panel shows it ringing from the event stream, seat 2002 answers (the panel marks it
本席), 加联动单位 brings the unit in, and the three hear each other (tones in each phone's
recording). Lab phones: caller 2001 (400 Hz), seats 2002 (1000 Hz) and 2004, unit 2003
(1800 Hz, the fallback number of unit L07)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from lab.audio import tone_report
from tests.bridges.conftest import SEATS, BridgeLab, leg
from tests.console.conftest import Console

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_an_inbound_call_answered_at_2002_gets_a_unit_from_the_panel_and_all_hear(
    bridge_lab: BridgeLab, browser_page: Any, tmp_path: Path
) -> None:
    caller = bridge_lab.phone("2001", tone_hz=400.0)
    desk = bridge_lab.phone(SEATS[0], tone_hz=1000.0, auto_answer=False)
    other = bridge_lab.phone(SEATS[1], tone_hz=700.0, auto_answer=False)
    unit = bridge_lab.phone("2003", tone_hz=1800.0)
    created = bridge_lab.post(
        "/api/v1/units",
        role="admin",
        json={"code": "L07", "name": "县供电公司", "kind": "linkage", "fallback_number": "2003"},
    )
    assert created.status_code == 201, created.text

    page = browser_page
    ui = Console(page, bridge_lab.live.base_url)
    ui.open()
    ui.login(bridge_lab.live.tokens["dispatcher"])
    page.wait_for_selector("#live[data-state='on']")
    page.click(".tabs button[data-view='inbound']")
    page.fill("#in-seat", SEATS[0])
    page.press("#in-seat", "Enter")
    page.reload()  # the seat is remembered for the session
    page.wait_for_selector("#live[data-state='on']")
    assert page.input_value("#f-dispatcher") == SEATS[0]
    page.click(".tabs button[data-view='inbound']")
    assert page.input_value("#in-seat") == SEATS[0]
    page.wait_for_selector("#f-unit option[value='L07']", state="attached")

    since_desk, since_other = desk.event_count(), other.event_count()
    caller.dial("1000")  # the center's number rings both seats
    desk.wait_incoming(10, since_desk)
    other.wait_incoming(10, since_other)
    page.wait_for_selector("#in-list article.inbound[data-state='ringing']", timeout=10_000)
    assert "振铃" in page.inner_text(".tabs button[data-view='inbound']")
    page.screenshot(path=str(tmp_path / "inbound-ringing.png"), full_page=True)
    desk.accept()
    other.wait_closed(10, since_other)
    card = "#in-list article.inbound[data-state='connected'][data-mine='true']"
    page.wait_for_selector(card, timeout=15_000)
    text = page.inner_text(card)
    assert "2001" in text and "接听席位 2002（本席）" in text
    page.screenshot(path=str(tmp_path / "inbound-answered.png"), full_page=True)

    # 加联动单位 with the keyboard: the unit select, then Enter on the button
    page.focus(f"{card} select")
    page.select_option(f"{card} select", "L07")
    page.focus(f"{card} button[type='submit']")
    page.keyboard.press("Enter")
    page.wait_for_selector("#in-msg.ok")
    call_id = bridge_lab.get("/api/v1/calls", params={"unit_code": "L07"}).json()[0]["id"]
    body = bridge_lab.wait_bridge(
        call_id,
        lambda b: len(b["legs"]) == 3 and all(x["state"] == "connected" for x in b["legs"]),
    )
    assert leg(body, "unit")["attempts"][0]["result"] == "answered"
    assert leg(body, "dispatcher")["number"] == SEATS[0]
    page.wait_for_selector("#in-empty:not([hidden])")  # no longer an inbound call waiting
    page.click(".tabs button[data-view='calls']")
    page.wait_for_selector(f"#calls article.call[data-call='{call_id}'][data-state='connected']")
    time.sleep(3.0)  # the three talk
    bridge_lab.post(f"/api/v1/bridges/{call_id}/end")
    bridge_lab.wait_bridge(call_id, lambda b: b["state"] == "ended")

    tones = [400.0, 1000.0, 1800.0]
    unit.wait_closed(10)
    caller.wait_closed(10)
    desk.wait_closed(10)
    heard_by_unit = tone_report(unit.received_recordings()[-1], tones, start=1.0)
    assert heard_by_unit[400.0] > -30 and heard_by_unit[1000.0] > -30, heard_by_unit
    heard_by_caller = tone_report(caller.received_recordings()[-1], tones, start=1.0)
    assert heard_by_caller[1800.0] > -30 and heard_by_caller[1000.0] > -30, heard_by_caller
    heard_by_desk = tone_report(desk.received_recordings()[-1], tones, start=1.0)
    assert heard_by_desk[1800.0] > -30 and heard_by_desk[400.0] > -30, heard_by_desk
    assert all("Failed to load resource" in e for e in ui.errors), ui.errors
