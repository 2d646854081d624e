"""A diverted incident not accepted within LINKCALL_DIVERT_ACCEPT_MINUTES is overdue: flagged in
the API with its deadline, and listed by ?overdue=true until the unit accepts it."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError
from sqlalchemy import update

from storage.base import utcnow
from storage.engine import session_scope
from storage.models.incidents import IncidentState, IncidentTransition


def _diverted(api: Any, unit: str) -> str:
    disp = api.auth("dispatcher")
    body = {"reporter_number": "13812345678", "category": "non_police", "type": "utility",
            "summary": "停电"}  # fmt: skip
    inc = api.client.post("/api/v1/incidents", json=body, headers=disp).json()
    r = api.client.post(f"/api/v1/incidents/{inc['id']}/divert", json={"unit_code": unit},
                        headers=disp)  # fmt: skip
    assert r.status_code == 200, r.text
    return str(inc["id"])


def _age_diversion(api: Any, incident_id: str, minutes: float) -> None:
    with session_scope(api.session_factory) as s:
        s.execute(
            update(IncidentTransition)
            .where(IncidentTransition.incident_id == incident_id,
                   IncidentTransition.to_state == IncidentState.DIVERTED)
            .values(at=utcnow() - timedelta(minutes=minutes))
        )  # fmt: skip


def test_overdue_diversions_are_flagged_and_listed_until_accepted(api: Any) -> None:
    for code in ("U01", "U02"):
        body = {"code": code, "name": code, "kind": "linkage"}
        api.client.post("/api/v1/units", json=body, headers=api.auth("admin"))
    late, fresh = _diverted(api, "U01"), _diverted(api, "U02")
    _age_diversion(api, late, 31)  # the default allows 30 minutes
    disp = api.auth("dispatcher")
    got = api.client.get(f"/api/v1/incidents/{late}", headers=disp).json()
    assert got["overdue"] is True and got["state"] == "diverted"
    due = datetime.fromisoformat(got["accept_due_at"])
    assert due - datetime.fromisoformat(got["diverted_at"]) == timedelta(minutes=30)
    other = api.client.get(f"/api/v1/incidents/{fresh}", headers=disp).json()
    assert other["overdue"] is False and other["accept_due_at"] is not None
    listed = api.client.get("/api/v1/incidents", params={"overdue": True}, headers=disp).json()
    assert [i["id"] for i in listed] == [late]

    r = api.client.post(f"/api/v1/incidents/{late}/accept", headers=api.auth("unit"))
    assert r.status_code == 200
    assert r.json()["overdue"] is False and r.json()["accept_due_at"] is None
    assert api.client.get("/api/v1/incidents", params={"overdue": True}, headers=disp).json() == []


def test_the_setting_is_validated(tmp_path: Any) -> None:
    from api.settings import Settings

    assert Settings(data_dir=tmp_path, divert_accept_minutes=45).divert_accept_within == timedelta(
        minutes=45
    )
    with pytest.raises(ValidationError):
        Settings(data_dir=tmp_path, divert_accept_minutes=0)
