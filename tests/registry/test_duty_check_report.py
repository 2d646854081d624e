"""GET /api/v1/duty-checks: the 查岗 results of a period across units, newest first, with a
per-unit summary (checks, passed, failed) for the supervisor."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from storage.engine import session_scope
from storage.models.registry import DutyCheckOutcome
from storage.registry import record_duty_check

T0 = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)


def test_duty_checks_of_a_period_with_a_summary_per_unit(reg: Any) -> None:
    rows = [("U01", 0, DutyCheckOutcome.PASSED), ("U01", 1, DutyCheckOutcome.NO_ANSWER),
            ("U02", 2, DutyCheckOutcome.PASSED), ("U01", 3, DutyCheckOutcome.PASSED),
            ("U02", 9, DutyCheckOutcome.NO_KEY)]  # fmt: skip
    with session_scope(reg.session_factory) as s:
        for unit, hours, outcome in rows:
            at = T0 + timedelta(hours=hours)
            record_duty_check(s, unit, week="2026-W49", number="+8613800000000", person="张三",
                              outcome=outcome, key_pressed="1" if outcome == "pass" else None,
                              detail=None, started_at=at, finished_at=at)  # fmt: skip
    params = {"from": T0.isoformat(), "to": (T0 + timedelta(hours=5)).isoformat()}
    r = reg.client.get("/api/v1/duty-checks", params=params, headers=reg.auth("supervisor"))
    assert r.status_code == 200, r.text
    body = r.json()
    assert [(c["unit_code"], c["outcome"]) for c in body["checks"]] == [
        ("U01", "pass"), ("U02", "pass"), ("U01", "no_answer"), ("U01", "pass")
    ]  # fmt: skip
    assert body["summary"] == [
        {"unit_code": "U01", "checks": 3, "passed": 2, "failed": 1},
        {"unit_code": "U02", "checks": 1, "passed": 1, "failed": 0},
    ]
    one = reg.client.get("/api/v1/duty-checks", params={"unit": "U02"},
                         headers=reg.auth("dispatcher")).json()  # fmt: skip
    assert one["summary"] == [{"unit_code": "U02", "checks": 2, "passed": 1, "failed": 1}]
    assert reg.client.get("/api/v1/duty-checks", headers=reg.auth("unit")).status_code == 403
