"""Units and rosters over HTTP: creation, versions and history, scoping, bad numbers."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from storage.models.auth import AuditEntry
from storage.models.registry import Roster
from tests.registry.conftest import roster_body

PUT = "/api/v1/units/U01/rosters/2026-W49"


def _count_rosters(api: Any) -> int:
    with api.session_factory() as s:
        return int(s.scalar(select(func.count()).select_from(Roster)))


def test_admin_creates_units_and_dispatchers_list_them(reg: Any) -> None:
    r = reg.client.get("/api/v1/units", headers=reg.auth("dispatcher"))
    assert r.status_code == 200
    assert [u["code"] for u in r.json()] == ["T01", "U01", "U02"]
    assert r.json()[1]["fallback_number"] == "+868334210001"
    r = reg.client.get("/api/v1/units?kind=township", headers=reg.auth("supervisor"))
    assert [u["name"] for u in r.json()] == ["玉津镇"]
    unit = {"code": "U09", "name": "县卫健局", "kind": "linkage"}
    assert (
        reg.client.post("/api/v1/units", json=unit, headers=reg.auth("dispatcher")).status_code
        == 403
    )
    dup = {"code": "U01", "name": "x", "kind": "linkage"}
    r = reg.client.post("/api/v1/units", json=dup, headers=reg.auth("admin"))
    assert r.status_code == 409
    assert r.headers["content-type"] == "application/problem+json"
    bad = {"code": "U10", "name": "x", "kind": "linkage", "fallback_number": "12"}
    r = reg.client.post("/api/v1/units", json=bad, headers=reg.auth("admin"))
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "fallback_number"


def test_unknown_unit_is_a_404_problem(reg: Any) -> None:
    r = reg.client.get("/api/v1/units/NOPE", headers=reg.auth("dispatcher"))
    assert r.status_code == 404
    assert r.headers["content-type"] == "application/problem+json"
    r = reg.client.put(
        "/api/v1/units/NOPE/rosters/2026-W49", json=roster_body(), headers=reg.auth("admin")
    )
    assert r.status_code == 404


def test_every_submission_is_a_new_version_and_history_is_readable(reg: Any) -> None:
    r1 = reg.client.put(PUT, json=roster_body(), headers=reg.auth("unit"))
    assert r1.status_code == 201, r1.text
    assert r1.json()["version"] == 1
    assert r1.json()["submitted_by"] == "unit U01"
    assert r1.json()["staff"][0]["phone"] == "+8613812345678"
    changed = roster_body(leader={"name": "赵副局长", "phone": "+86 139 0000 0002"})
    r2 = reg.client.put(PUT, json=changed, headers=reg.auth("admin"))
    assert r2.status_code == 201 and r2.json()["version"] == 2

    latest = reg.client.get(PUT, headers=reg.auth("dispatcher")).json()
    assert latest["version"] == 2
    assert latest["leader"] == {"name": "赵副局长", "phone": "+8613900000002"}
    assert latest["history"] is None
    full = reg.client.get(PUT + "?history=true", headers=reg.auth("dispatcher")).json()
    assert [(v["version"], v["leader"]["name"], v["submitted_by"]) for v in full["history"]] == [
        (1, "王局长", "unit U01"),
        (2, "赵副局长", "admin"),
    ]
    with reg.session_factory() as s:
        actions = s.scalars(
            select(AuditEntry.action).where(AuditEntry.resource_id == "U01/2026-W49")
        ).all()
    assert actions == ["roster.submit", "roster.submit"]
    r = reg.client.get("/api/v1/units/U01/rosters/2026-W50", headers=reg.auth("dispatcher"))
    assert r.status_code == 404


def test_a_unit_token_may_not_touch_another_units_roster(reg: Any) -> None:
    r = reg.client.put(PUT, json=roster_body(), headers=reg.auth("unit2"))
    assert r.status_code == 403
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["type"].endswith("/forbidden")
    r = reg.client.put(PUT, json=roster_body(), headers=reg.auth("dispatcher"))
    assert r.status_code == 403
    assert _count_rosters(reg) == 0
    reg.client.put(PUT, json=roster_body(), headers=reg.auth("unit"))
    assert reg.client.get(PUT, headers=reg.auth("unit2")).status_code == 403
    assert reg.client.get(PUT, headers=reg.auth("unit")).status_code == 200


def test_invalid_numbers_are_422_naming_each_field_and_nothing_is_stored(reg: Any) -> None:
    body = roster_body(
        staff=[
            {"name": "张三", "phone": "13812345678"},
            {"name": "李四", "phone": "0833-12345"},
            {"name": "Bob", "phone": "+1 650 253 0000"},
        ],
        leader={"name": "王局长", "phone": "110"},
    )
    r = reg.client.put(PUT, json=body, headers=reg.auth("unit"))
    assert r.status_code == 422
    assert r.headers["content-type"] == "application/problem+json"
    fields = {e["field"]: e["message"] for e in r.json()["errors"]}
    assert set(fields) == {"leader.phone", "staff[1].phone", "staff[2].phone"}
    assert "international" in fields["staff[2].phone"]
    assert "not a number that exists" in fields["staff[1].phone"]
    assert _count_rosters(reg) == 0


def test_invalid_week_is_422(reg: Any) -> None:
    r = reg.client.put(
        "/api/v1/units/U01/rosters/2025-W53", json=roster_body(), headers=reg.auth("unit")
    )
    assert r.status_code == 422
    assert r.json()["errors"][0]["field"] == "week"
    r = reg.client.put(
        "/api/v1/units/U01/rosters/2026-W53", json=roster_body(), headers=reg.auth("unit")
    )
    assert r.status_code == 201


def test_missing_list_names_exactly_the_units_without_a_roster(reg: Any) -> None:
    reg.client.put(PUT, json=roster_body(), headers=reg.auth("unit"))
    r = reg.client.get("/api/v1/rosters/missing?week=2026-W49", headers=reg.auth("dispatcher"))
    assert r.status_code == 200
    assert r.json()["week"] == "2026-W49"
    assert [u["code"] for u in r.json()["units"]] == ["T01", "U02"]
    r = reg.client.get("/api/v1/rosters/missing?week=2026-W50", headers=reg.auth("dispatcher"))
    assert [u["code"] for u in r.json()["units"]] == ["T01", "U01", "U02"]
    assert (
        reg.client.get("/api/v1/rosters/missing?week=x", headers=reg.auth("admin")).status_code
        == 422
    )
    assert reg.client.get("/api/v1/rosters/missing", headers=reg.auth("unit")).status_code == 403
