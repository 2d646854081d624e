"""Scheduled 查岗 on real peers (issue 11): LINKCALL_DUTY_CHECK_SCHEDULE set to a time the test
chooses; the service plans the check, is restarted before it is due, and the restarted
service places it at that time: the phone on duty presses 1 and the check passes."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from tests.reminders_lab.conftest import Lab, ServiceStarter, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SH = ZoneInfo("Asia/Shanghai")


def _report(lab: Lab, **params: Any) -> dict[str, Any]:
    resp = lab.get("/api/v1/duty-checks", params=params)
    assert resp.status_code == 200, resp.text
    return resp.json()  # type: ignore[no-any-return]


def test_a_scheduled_check_survives_a_restart_and_fires_on_time(
    start_service: ServiceStarter,
) -> None:
    due_local = (datetime.now(SH) + timedelta(seconds=40)).replace(microsecond=0)
    schedule = f"daily {due_local:%H:%M:%S} all"
    window = {"from": (due_local - timedelta(minutes=5)).isoformat(),
              "to": (due_local + timedelta(minutes=5)).isoformat()}  # fmt: skip
    with start_service(duty_check_schedule=schedule, duty_check_poll_s=0.5) as lab:
        week = f"{due_local.isocalendar().year}-W{due_local.isocalendar().week:02d}"
        unit = {"code": "L41", "name": "县水务局", "kind": "linkage"}
        assert lab.post("/api/v1/units", role="admin", json=unit).status_code == 201
        resp = lab.put(
            f"/api/v1/units/L41/rosters/{week}",
            json={"leader": {"name": "赵主任", "phone": "2009"},
                  "staff": [{"name": "值班员", "phone": "2008", "order": 1}]},
        )  # fmt: skip
        assert resp.status_code == 201, resp.text
        planned = wait_for(lambda: _report(lab, **window)["planned"], lambda p: len(p) == 1, 15)
        (plan,) = planned
        assert plan["unit_code"] == "L41" and plan["status"] == "planned"
        assert datetime.fromisoformat(plan["due_at"]) == due_local
        assert lab.get("/api/v1/duty-checks", role="unit").status_code == 403
    # the service is stopped; the check is still in the future
    assert datetime.now(UTC) < due_local - timedelta(seconds=5), "restart too slow for the test"

    with start_service(duty_check_schedule=schedule, duty_check_poll_s=0.5) as lab:
        staff = lab.phone("2008", tone_hz=500.0)
        since = staff.event_count()
        staff.wait_established(60, since)
        rang_at = datetime.now(UTC)
        assert rang_at >= due_local, "placed before its time"
        assert rang_at <= due_local + timedelta(seconds=15), "placed late"
        time.sleep(1.5)  # into the prompt 请按1确认在岗
        staff.send_dtmf("1")
        report = wait_for(
            lambda: _report(lab, unit="L41", **window),
            lambda r: r["planned"] and r["planned"][0]["status"] == "done",
            40,
        )
        (check,) = report["checks"]
        assert (check["outcome"], check["number"], check["key_pressed"]) == ("pass", "2008", "1")
        (done,) = report["planned"]
        assert done["id"] == plan["id"] and done["check_id"] == check["id"]
        assert report["summary"] == [{"unit_code": "L41", "checks": 1, "passed": 1, "failed": 0}]
        # the next slot is planned once (tomorrow), not the fired one again
        time.sleep(2)
        assert len(_report(lab, **window)["checks"]) == 1
