"""警情 board in a real browser against a real service: an incident goes from receipt to
surveyed from the board — recorded, diverted, bridged from the incident (the bridge form is
filled in and the call carries the incident id), overdue when the unit is slow, accepted and
closed by the unit, surveyed (the survey's stored outcome: the survey call itself is covered by
tests/surveys_lab) — with its timeline and the rework flag an unsatisfied answer raises."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import update

from storage import surveys as survey_repo
from storage.base import utcnow
from storage.engine import session_scope
from storage.models.incidents import IncidentState, IncidentTransition
from storage.models.surveys import SurveyStatus
from tests.conftest import LiveService
from tests.console.conftest import Console

pytestmark = [pytest.mark.integration]


def _card(inc: str) -> str:
    return f".incident-card[data-incident='{inc}']"


def test_an_incident_goes_from_receipt_to_surveyed_on_the_board(
    live_api: LiveService, browser_page: Any, tmp_path: Path
) -> None:
    factory = live_api.app.state.service.session_factory  # type: ignore[attr-defined]
    with httpx.Client(base_url=live_api.base_url, headers=live_api.auth("admin")) as http:
        body = {"code": "U01", "name": "县供电公司", "kind": "linkage", "fallback_number": "2009"}
        assert http.post("/api/v1/units", json=body).status_code == 201
    page = browser_page
    ui = Console(page, live_api.base_url)
    ui.open()
    ui.login(live_api.tokens["dispatcher"])
    page.wait_for_selector("#live[data-state='on']")
    page.fill("#f-dispatcher", "2002")  # the seat, typed once
    page.click(".tabs button[data-view='incidents']")

    # 接警登记
    page.click("#incident-form button[type='submit']")
    page.wait_for_selector("#incident-form .field[data-field='summary'].invalid")
    page.fill("#if-number", "138 1234 5678")
    page.select_option("#if-category", "non_police")
    page.fill("#if-type", "utility")
    page.fill("#if-summary", "小区停电，请求供电公司处理")
    page.click("#incident-form button[type='submit']")
    page.wait_for_selector("[data-column='received'] .incident-card")
    inc = page.get_attribute("[data-column='received'] .incident-card", "data-incident")
    assert inc
    page.wait_for_selector("#ib-detail:not([hidden]) select")

    # 分流 to U01
    page.select_option(f"#ib-unit-{inc}", "U01")
    page.click("#ib-detail button:has-text('分流')")
    page.wait_for_selector(f"[data-column='diverted'] {_card(inc)}")
    assert "县供电公司" in page.inner_text(_card(inc))

    # 发起三方通话 from the incident: the bridge form is filled in, 拨打 places the call
    page.click("#ib-detail button:has-text('发起三方通话')")
    page.wait_for_selector("#view-bridge:not([hidden])")
    assert page.input_value("#f-caller") == "+8613812345678"  # as stored
    assert page.input_value("#f-unit") == "U01" and page.input_value("#f-incident") == inc
    assert page.input_value("#f-dispatcher") == "2002"
    assert page.evaluate("document.activeElement.id") == "bridge-submit"
    page.keyboard.press("Enter")
    page.wait_for_selector("#calls article.call[data-state='dialing']")
    with httpx.Client(base_url=live_api.base_url, headers=live_api.auth("dispatcher")) as http:
        calls = http.get("/api/v1/calls", params={"incident_id": inc}).json()
        assert len(calls) == 1 and calls[0]["unit_code"] == "U01"
        http.post(f"/api/v1/bridges/{calls[0]['id']}/end")

    # the unit is slow: overdue after LINKCALL_DIVERT_ACCEPT_MINUTES (30 by default)
    with session_scope(factory) as s:
        s.execute(
            update(IncidentTransition)
            .where(IncidentTransition.incident_id == inc,
                   IncidentTransition.to_state == IncidentState.DIVERTED)
            .values(at=utcnow() - timedelta(minutes=45))
        )  # fmt: skip
    page.click(".tabs button[data-view='incidents']")
    page.wait_for_selector(f"{_card(inc)}.overdue")
    assert "超时未接收" in page.inner_text(_card(inc))
    assert "U01 县供电公司 1 起" in page.inner_text("#ib-overdue")
    page.screenshot(path=str(tmp_path / "incidents-overdue.png"), full_page=True)

    # the unit accepts and closes (its own view is tested in test_console_unit.py); the board
    # follows from the event stream
    with httpx.Client(base_url=live_api.base_url, headers=live_api.auth("unit")) as http:
        assert http.post(f"/api/v1/incidents/{inc}/accept", json={}).status_code == 200
        page.wait_for_selector(f"[data-column='accepted'] {_card(inc)}")
        assert page.locator(f"{_card(inc)}.overdue").count() == 0
        assert page.is_hidden("#ib-overdue")
        r = http.post(f"/api/v1/incidents/{inc}/close", json={"feedback": "已派员抢修，供电已恢复"})
        assert r.status_code == 200
        survey_id = r.json()["survey_id"]
    page.wait_for_selector(f"[data-column='closed'] {_card(inc)}")

    # the callback survey's outcome as the survey job stores it: unsatisfied -> rework
    with session_scope(factory) as s:
        survey_repo.apply_outcome(
            s, survey_id, status=SurveyStatus.ANSWERED, now=utcnow(), reason="answered",
            answer_key="3", answer="unsatisfied", answered_at=utcnow(),
            rework_reason="callback answer: unsatisfied",
        )  # fmt: skip
    page.click("#ib-refresh")
    page.wait_for_selector(f"[data-column='surveyed'] {_card(inc)}.rework")
    page.click(_card(inc))
    page.wait_for_selector("#ib-detail .timeline li[data-to='surveyed']")
    steps = page.eval_on_selector_all("#ib-detail .timeline li", "ls => ls.map(l => l.dataset.to)")
    assert steps == ["received", "diverted", "accepted", "closed", "surveyed"]
    timeline = page.inner_text("#ib-detail .timeline")
    assert "已派员抢修" in timeline and "unsatisfied" in timeline
    assert "需返工" in page.inner_text("#ib-detail")
    assert "null" not in page.inner_text("#view-incidents")
    assert page.locator("#ib-detail button:has-text('重新分流')").count() == 1  # rework
    page.screenshot(path=str(tmp_path / "incidents-surveyed.png"), full_page=True)
    assert ui.errors == [], ui.errors


def test_a_board_update_keeps_the_unit_and_note_the_dispatcher_is_choosing(
    live_api: LiveService, browser_page: Any
) -> None:
    """Another dispatcher's incident arrives (an incident.* event redraws the board and the open
    incident) while this one is choosing the unit and typing the note: both stay, the focus
    too, and 分流 sends them (before, the redraw emptied them and 分流 said 请选择联动单位)."""
    with httpx.Client(base_url=live_api.base_url, headers=live_api.auth("admin")) as http:
        for code, name in (("U01", "县供电公司"), ("U02", "县自来水公司")):
            body = {"code": code, "name": name, "kind": "linkage", "fallback_number": "2009"}
            assert http.post("/api/v1/units", json=body).status_code == 201
    report = {"reporter_number": "13812345678", "category": "non_police", "type": "utility"}
    with httpx.Client(base_url=live_api.base_url, headers=live_api.auth("dispatcher")) as http:
        first = http.post("/api/v1/incidents", json=report | {"summary": "停水"}).json()["id"]
    page = browser_page
    ui = Console(page, live_api.base_url)
    ui.open()
    ui.login(live_api.tokens["dispatcher"])
    page.wait_for_selector("#live[data-state='on']")
    page.click(".tabs button[data-view='incidents']")
    page.click(_card(first))
    page.wait_for_selector(f"#ib-unit-{first}")
    page.select_option(f"#ib-unit-{first}", "U02")
    page.fill(f"#ib-unit-{first}-note", "请派抢修班")
    page.focus(f"#ib-unit-{first}-note")
    page.evaluate("document.getElementById('ib-detail').firstChild.dataset.old = '1'")

    with httpx.Client(base_url=live_api.base_url, headers=live_api.auth("dispatcher")) as http:
        second = http.post("/api/v1/incidents", json=report | {"summary": "停电"}).json()["id"]
    page.wait_for_selector(_card(second))  # the board was loaded again
    page.wait_for_function(  # and the open incident drawn again (its old heading is gone)
        "!document.getElementById('ib-detail').firstChild.dataset.old"
    )
    assert page.input_value(f"#ib-unit-{first}") == "U02"
    assert page.input_value(f"#ib-unit-{first}-note") == "请派抢修班"
    assert page.evaluate("document.activeElement.id") == f"ib-unit-{first}-note"
    page.click("#ib-detail button:has-text('分流')")
    page.wait_for_selector(f"[data-column='diverted'] {_card(first)}")
    assert "县自来水公司" in page.inner_text(_card(first))
    with httpx.Client(base_url=live_api.base_url, headers=live_api.auth("dispatcher")) as http:
        timeline = http.get(f"/api/v1/incidents/{first}/timeline").json()
    assert timeline[-1]["to_state"] == "diverted" and timeline[-1]["note"] == "请派抢修班"
