"""A unit token maintains its own roster through the public API: numbers checked before saving,
its weeks, its template, its own sheet imported (all or nothing) — and nothing of other units."""

from __future__ import annotations

import csv
import io
from typing import Any

import openpyxl
from sqlalchemy import func, select

from storage.models.registry import Roster
from tests.registry.conftest import roster_body

THIS, NEXT = "2026-W49", "2026-W50"


def _count(api: Any) -> int:
    with api.session_factory() as s:
        return int(s.scalar(select(func.count()).select_from(Roster)))


def _import(api: Any, role: str, text: str, name: str = "sheet.csv") -> Any:
    return api.client.post(
        "/api/v1/rosters/import",
        files={"file": (name, text.encode("utf-8"))},
        headers=api.auth(role),
    )


def test_number_check_applies_the_dial_policy_and_stores_nothing(reg: Any) -> None:
    def check(number: str, role: str = "unit") -> dict[str, Any]:
        r = reg.client.post(
            "/api/v1/numbers/check",
            json={"number": number, "field": "staff[0].phone"},
            headers=reg.auth(role),
        )
        assert r.status_code == 200, r.text
        return r.json()  # type: ignore[no-any-return]

    ok = check("0833-421 2345")
    assert ok["valid"] is True and ok["canonical"] == "+868334212345"
    assert ok["kind"] == "fixed_line" and ok["field"] == "staff[0].phone"
    bad = check("12")
    assert bad["valid"] is False and bad["type"] == "InvalidNumber" and bad["reason"]
    refused = check("+44 20 7946 0958", role="dispatcher")
    assert refused["valid"] is False and refused["type"] == "DialRefused"
    assert "international" in refused["reason"]
    # the same verdict as a save: the refused number is refused by PUT too, nothing stored
    body = roster_body(staff=[{"name": "张三", "phone": "+44 20 7946 0958"}])
    r = reg.client.put(f"/api/v1/units/U01/rosters/{NEXT}", json=body, headers=reg.auth("unit"))
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "staff[0].phone"
    assert _count(reg) == 0
    assert reg.client.post("/api/v1/numbers/check", json={"number": "1"}).status_code == 401


def test_a_unit_lists_its_own_weeks_and_is_refused_other_units(reg: Any) -> None:
    for week in (THIS, NEXT, NEXT):
        r = reg.client.put(
            f"/api/v1/units/U01/rosters/{week}", json=roster_body(), headers=reg.auth("unit")
        )
        assert r.status_code == 201, r.text
    reg.client.put(
        f"/api/v1/units/U02/rosters/{THIS}", json=roster_body(), headers=reg.auth("admin")
    )
    weeks = reg.client.get("/api/v1/units/U01/rosters", headers=reg.auth("unit")).json()
    assert [(w["week"], w["version"], w["submitted_by"]) for w in weeks] == [
        (NEXT, 2, "unit U01"),
        (THIS, 1, "unit U01"),
    ]
    only = reg.client.get(
        "/api/v1/units/U01/rosters", params={"week": THIS}, headers=reg.auth("unit")
    ).json()
    assert [w["week"] for w in only] == [THIS]
    for path in (
        "/api/v1/units/U02/rosters",
        f"/api/v1/units/U02/rosters/{THIS}",
        f"/api/v1/units/U02/rosters/{THIS}/template",
        "/api/v1/units/U02",
        "/api/v1/units/U02/duty-checks",
    ):
        assert reg.client.get(path, headers=reg.auth("unit")).status_code == 403, path
    for path in ("/api/v1/units", "/api/v1/rosters/missing", "/api/v1/rosters/export"):
        assert reg.client.get(path, headers=reg.auth("unit")).status_code == 403, path


def test_the_template_is_the_units_latest_roster_moved_to_the_week_and_imports_back(
    reg: Any,
) -> None:
    blank = reg.client.get(
        f"/api/v1/units/U01/rosters/{NEXT}/template",
        params={"format": "csv"},
        headers=reg.auth("unit"),
    )
    assert blank.status_code == 200 and blank.headers["content-type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(blank.content.decode("utf-8-sig"))))
    assert rows[0][:5] == ["单位编码", "周次", "角色", "姓名", "电话"]
    assert [r[:3] for r in rows[1:]] == [["U01", NEXT, "值班领导"], ["U01", NEXT, "值班人员"]]

    reg.client.put(
        f"/api/v1/units/U01/rosters/{THIS}", json=roster_body(), headers=reg.auth("unit")
    )
    sheet = reg.client.get(f"/api/v1/units/U01/rosters/{NEXT}/template", headers=reg.auth("unit"))
    assert sheet.status_code == 200
    book = openpyxl.load_workbook(io.BytesIO(sheet.content))
    cells = [[c or "" for c in row] for row in book.active.iter_rows(values_only=True)]
    assert [r[1] for r in cells[1:]] == [NEXT] * 3
    assert [r[3] for r in cells[1:]] == ["王局长", "张三", "李四"]

    r = reg.client.post(
        "/api/v1/rosters/import",
        files={"file": ("mine.xlsx", sheet.content)},
        headers=reg.auth("unit"),
    )
    assert r.status_code == 201, r.text
    assert r.json() == {"imported": 1, "rosters": [f"U01/{NEXT}"]}
    got = reg.client.get(
        f"/api/v1/units/U01/rosters/{NEXT}", params={"history": True}, headers=reg.auth("unit")
    ).json()
    assert got["leader"]["name"] == "王局长" and got["submitted_by"] == "unit U01"
    assert [s["phone"] for s in got["staff"]] == ["+8613812345678", "+868334212345"]


def test_a_unit_imports_only_its_own_rows_all_or_nothing(reg: Any) -> None:
    head = "单位编码,周次,角色,姓名,电话,顺序,班次\n"
    mine = (
        f"U01,{NEXT},值班领导,王局长,13900000001,,\n"
        f"U01,{NEXT},值班人员,张三,13812345678,1,1-5 08:00-18:00\n"
    )
    other = f"U02,{NEXT},值班领导,赵局长,13900000002,,\nU02,{NEXT},值班人员,钱五,13812345679,1,\n"
    r = _import(reg, "unit", head + mine + other)
    assert r.status_code == 422, r.text
    errors = r.json()["errors"]
    assert [(e["row"], e["field"]) for e in errors] == [
        (4, "单位编码/unit_code"),
        (5, "单位编码/unit_code"),
    ]
    assert "only U01" in errors[0]["message"]
    bad_phone = mine.replace("13812345678", "12")
    r = _import(reg, "unit", head + bad_phone)
    assert r.status_code == 422 and r.json()["errors"][0]["row"] == 3
    assert r.json()["errors"][0]["field"] == "电话/phone"
    assert _count(reg) == 0  # nothing of either refused sheet was stored

    assert _import(reg, "dispatcher", head + mine).status_code == 403
    assert _import(reg, "supervisor", head + mine).status_code == 403
    r = _import(reg, "unit", head + mine)
    assert r.status_code == 201 and r.json()["rosters"] == [f"U01/{NEXT}"]
    assert _import(reg, "admin", head + other).status_code == 201  # the admin imports any unit
    assert _count(reg) == 2


def test_a_unit_sees_and_handles_only_incidents_diverted_to_it(reg: Any) -> None:
    disp = reg.auth("dispatcher")
    ids = []
    for unit in ("U01", "U02"):
        body = {"reporter_number": "13812345678", "category": "non_police",
                "type": "utility", "summary": f"停电 {unit}"}  # fmt: skip
        inc = reg.client.post("/api/v1/incidents", json=body, headers=disp).json()
        r = reg.client.post(
            f"/api/v1/incidents/{inc['id']}/divert", json={"unit_code": unit}, headers=disp
        )
        assert r.status_code == 200, r.text
        ids.append(inc["id"])
    mine = reg.client.get("/api/v1/incidents", headers=reg.auth("unit")).json()
    assert [i["id"] for i in mine] == [ids[0]]
    assert (
        reg.client.get(
            "/api/v1/incidents", params={"unit": "U02"}, headers=reg.auth("unit")
        ).status_code
        == 403
    )
    for path in (f"/api/v1/incidents/{ids[1]}", f"/api/v1/incidents/{ids[1]}/timeline"):
        assert reg.client.get(path, headers=reg.auth("unit")).status_code == 403
    r = reg.client.post(f"/api/v1/incidents/{ids[1]}/accept", headers=reg.auth("unit"))
    assert r.status_code == 403
    r = reg.client.post(f"/api/v1/incidents/{ids[0]}/accept", headers=reg.auth("unit"))
    assert r.status_code == 200 and r.json()["state"] == "accepted"


def test_a_unit_token_reaches_none_of_the_centers_views(reg: Any) -> None:
    """Every endpoint behind the center's console views refuses a unit token."""
    unit = reg.auth("unit")
    gets = [
        "/api/v1/calls", "/api/v1/calls?number=5678", "/api/v1/units", "/api/v1/rosters/missing",
        "/api/v1/rosters/reminders", "/api/v1/rosters/export", "/api/v1/duty-checks",
        "/api/v1/surveys", "/api/v1/surveys/stats", "/api/v1/surveys/stats?format=xlsx&group=unit",
        "/api/v1/recordings", "/api/v1/recordings/x/package", "/api/v1/audit", "/api/v1/tokens",
        "/api/v1/units/U01/dial-list",
    ]  # fmt: skip
    for path in gets:
        assert reg.client.get(path, headers=unit).status_code == 403, path
    writes = [
        ("post", "/api/v1/bridges", {"caller": {"number": "2001"}, "dispatcher": {"number": "2002"},
                                     "unit": {"number": "2003"}}),
        ("post", "/api/v1/incidents", {"reporter_number": "13812345678", "category": "police",
                                       "type": "help", "summary": "x"}),
        ("patch", "/api/v1/units/U01", {"active": False}),
        ("post", "/api/v1/tokens", {"name": "x", "role": "admin"}),
    ]  # fmt: skip
    for method, path, body in writes:
        r = getattr(reg.client, method)(path, json=body, headers=unit)
        assert r.status_code == 403, (path, r.text)
