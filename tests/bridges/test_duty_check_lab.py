"""查岗 against a real baresip phone (issue 6): pressing 1 records pass; not answering, fail."""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from tests.bridges.conftest import BridgeLab

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _unit_with_duty_phone(lab: BridgeLab, code: str, phone: str) -> None:
    assert (
        lab.post(
            "/api/v1/units",
            role="admin",
            json={"code": code, "name": "县自来水公司", "kind": "linkage"},
        ).status_code
        == 201
    )
    iso = datetime.now(ZoneInfo("Asia/Shanghai")).isocalendar()
    resp = lab.http.put(
        f"/api/v1/units/{code}/rosters/{iso.year}-W{iso.week:02d}",
        headers=lab.live.auth("admin"),
        json={
            "leader": {"name": "赵主任", "phone": phone},
            "staff": [{"name": "值班员", "phone": phone, "order": 1}],
        },
    )
    assert resp.status_code in (200, 201), resp.text


def _wait_check(lab: BridgeLab, code: str, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        checks = lab.get(f"/api/v1/units/{code}/duty-checks", role="supervisor").json()
        if checks:
            return checks[0]  # type: ignore[no-any-return]
        time.sleep(0.3)
    raise AssertionError("no duty check result stored")


def test_pressing_1_records_a_pass(bridge_lab: BridgeLab) -> None:
    phone = bridge_lab.phone("2006", tone_hz=500.0)
    _unit_with_duty_phone(bridge_lab, "L21", "2006")
    since = phone.event_count()
    resp = bridge_lab.post("/api/v1/units/L21/duty-checks", role="supervisor")
    assert resp.status_code == 202, resp.text
    phone.wait_established(15, since)
    time.sleep(1.5)  # into the prompt
    phone.send_dtmf("1")
    check = _wait_check(bridge_lab, "L21", 40)
    assert check["outcome"] == "pass", check
    calls = bridge_lab.get("/api/v1/calls", params={"kind": "duty_check"}).json()
    assert calls and calls[0]["recording_id"], calls


def test_not_answering_records_a_fail(bridge_lab: BridgeLab) -> None:
    bridge_lab.phone("2007", tone_hz=500.0, auto_answer=False)
    _unit_with_duty_phone(bridge_lab, "L22", "2007")
    assert bridge_lab.post("/api/v1/units/L22/duty-checks", role="supervisor").status_code == 202
    check = _wait_check(bridge_lab, "L22", 60)
    assert check["outcome"] == "no_answer", check
