"""值守报表 in a real browser against a real service: for a week, per unit, whether its roster
was reported, the reminder, the 查岗 results and the overdue diversions; a dispatcher and a unit
token have no such tab."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import update

from registry.duty import week_of
from registry.reminder import call_units_missing_roster
from storage.base import utcnow
from storage.engine import session_scope
from storage.models.incidents import IncidentState, IncidentTransition
from storage.models.registry import DutyCheckOutcome
from storage.models.reminders import ReminderStatus, RosterReminderCall
from storage.registry import record_duty_check
from tests.conftest import LiveService
from tests.console.conftest import Console

pytestmark = [pytest.mark.integration]


def test_the_weekly_duty_report_per_unit(
    live_api: LiveService, browser_page: Any, tmp_path: Path
) -> None:
    service = live_api.app.state.service  # type: ignore[attr-defined]
    week = week_of(utcnow(), service.settings.zone)
    with httpx.Client(base_url=live_api.base_url, headers=live_api.auth("admin")) as http:
        for code, name in (("L01", "县供电公司"), ("L02", "县水务局"), ("T01", "玉津镇")):
            kind = "township" if code.startswith("T") else "linkage"
            assert (
                http.post(
                    "/api/v1/units", json={"code": code, "name": name, "kind": kind}
                ).status_code
                == 201
            )
        roster = {
            "leader": {"name": "王", "phone": "2004"},
            "staff": [{"name": "张", "phone": "2003"}],
        }
        assert http.put(f"/api/v1/units/L01/rosters/{week}", json=roster).status_code == 201
        assert http.put(f"/api/v1/units/T01/rosters/{week}", json=roster).status_code == 201
    with httpx.Client(base_url=live_api.base_url, headers=live_api.auth("dispatcher")) as http:
        body = {"reporter_number": "13812345678", "category": "non_police", "type": "utility",
                "summary": "停水"}  # fmt: skip
        inc = http.post("/api/v1/incidents", json=body).json()
        http.post(f"/api/v1/incidents/{inc['id']}/divert", json={"unit_code": "L02"})
    now = utcnow()
    with session_scope(service.session_factory) as s:
        s.execute(update(IncidentTransition)
                  .where(IncidentTransition.incident_id == inc["id"],
                         IncidentTransition.to_state == IncidentState.DIVERTED)
                  .values(at=now - timedelta(hours=2)))  # fmt: skip
        # the reminder: L02 (no roster) is queued a reminder call, then the phone pressed 1
        run = call_units_missing_roster(s, week, now, created_by="system", only_new=True)
        assert run.unit_codes == ("L02",)
        s.execute(update(RosterReminderCall).values(status=ReminderStatus.ACKNOWLEDGED))
        for outcome in (DutyCheckOutcome.PASSED, DutyCheckOutcome.NO_ANSWER):
            record_duty_check(s, "L01", week=week, number="2003", person="张",
                              outcome=outcome, key_pressed=None, detail=None,
                              started_at=now, finished_at=now)  # fmt: skip
        record_duty_check(s, "T01", week=week, number="2003", person="张",
                          outcome=DutyCheckOutcome.PASSED, key_pressed="1", detail=None,
                          started_at=now, finished_at=now)  # fmt: skip

    page = browser_page
    ui = Console(page, live_api.base_url)
    ui.open()
    ui.login(live_api.tokens["dispatcher"])
    page.wait_for_selector("#whoami:has-text('调度员')")
    assert page.locator(".tabs button[data-view='dutyreport']:visible").count() == 0
    page.click("#logout-btn")
    ui.login(live_api.tokens["supervisor"])
    page.wait_for_selector("#whoami:has-text('督导员')")
    page.click(".tabs button[data-view='dutyreport']")
    assert page.input_value("#dr-week") == week
    page.click("#dr-form button[type='submit']")
    page.wait_for_selector("#dr-table:not([hidden]) tr[data-unit='L01']")
    l01 = page.inner_text("#dr-table tr[data-unit='L01']")
    assert "已报备" in l01 and "2 次 · 通过 1 · 未通过 1" in l01
    l02 = page.inner_text("#dr-table tr[data-unit='L02']")
    assert "未报备" in l02 and "已提醒 · 已按1确认" in l02 and "未查岗" in l02 and "1 起" in l02
    t01 = page.inner_text("#dr-table tr[data-unit='T01']")
    assert "已报备" in t01 and "1 次 · 通过 1 · 未通过 0" in t01 and "乡镇" in t01
    assert "未报备 1 个单位" in page.inner_text("#dr-msg")
    page.check("#dr-problems")
    visible = page.eval_on_selector_all(
        "#dr-table tbody tr:not([hidden])", "rs => rs.map(r => r.dataset.unit)"
    )
    assert visible == ["L01", "L02"]
    page.screenshot(path=str(tmp_path / "dutyreport.png"), full_page=True)
    assert ui.errors == [], ui.errors
