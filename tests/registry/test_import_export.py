"""Bulk rosters: export then import round trip (CSV and XLSX); bad rows store nothing."""

from __future__ import annotations

import io
from typing import Any

import openpyxl
import pytest
from sqlalchemy import func, select

from storage.models.registry import Roster
from tests.registry.conftest import roster_body

WEEK = "2026-W49"
SHIFTED = roster_body(
    staff=[
        {
            "name": "白班",
            "phone": "13800000001",
            "order": 1,
            "shift": {"days": [1, 2, 3, 4, 5], "start": "08:00", "end": "18:00"},
        },
        {
            "name": "夜班",
            "phone": "0833-4212345-8001",
            "order": 2,
            "shift": {"days": [5], "start": "18:00", "end": "08:00"},
        },
    ]
)


def _rosters(api: Any) -> int:
    with api.session_factory() as s:
        return int(s.scalar(select(func.count()).select_from(Roster)))


def _upload(api: Any, name: str, data: bytes) -> Any:
    return api.client.post(
        "/api/v1/rosters/import", files={"file": (name, data)}, headers=api.auth("admin")
    )


@pytest.mark.parametrize("fmt", ["csv", "xlsx"])
def test_export_then_import_round_trip(reg: Any, fmt: str) -> None:
    reg.client.put(f"/api/v1/units/U01/rosters/{WEEK}", json=SHIFTED, headers=reg.auth("unit"))
    reg.client.put(
        f"/api/v1/units/U02/rosters/{WEEK}", json=roster_body(), headers=reg.auth("admin")
    )
    before = {
        code: reg.client.get(
            f"/api/v1/units/{code}/rosters/{WEEK}", headers=reg.auth("admin")
        ).json()
        for code in ("U01", "U02")
    }
    r = reg.client.get(
        f"/api/v1/rosters/export?week={WEEK}&format={fmt}", headers=reg.auth("dispatcher")
    )
    assert r.status_code == 200
    assert f"rosters-{WEEK}.{fmt}" in r.headers["content-disposition"]
    if fmt == "csv":
        text = r.content.decode("utf-8-sig")
        assert text.splitlines()[0] == "单位编码,周次,角色,姓名,电话,顺序,班次,备注"
        assert "U01,2026-W49,值班人员,夜班,+868334212345;ext=8001,2,5 18:00-08:00," in text
    else:
        sheet = openpyxl.load_workbook(io.BytesIO(r.content)).active
        assert [c.value for c in sheet[1]][:5] == ["单位编码", "周次", "角色", "姓名", "电话"]

    imported = _upload(reg, f"rosters.{fmt}", r.content)
    assert imported.status_code == 201, imported.text
    assert imported.json() == {"imported": 2, "rosters": [f"U01/{WEEK}", f"U02/{WEEK}"]}
    for code, old in before.items():
        new = reg.client.get(
            f"/api/v1/units/{code}/rosters/{WEEK}", headers=reg.auth("admin")
        ).json()
        assert new["version"] == old["version"] + 1
        assert new["submitted_by"] == "admin"
        for key in ("leader", "staff", "notes"):
            assert new[key] == old[key], key


def test_import_with_english_headers_and_local_number_formats(reg: Any) -> None:
    csv_text = (
        "unit_code,week,role,name,phone,order,shift\n"
        "T01,2026-W50,leader,刘镇长,13900000009,,\n"
        "T01,2026-W50,staff,陈干事,0833-4219999,1,1-5 08:30-17:30\n"
        "T01,2026-W50,值班人员,周干事,+86 138 0000 0008,2,\n"
    )
    r = _upload(reg, "t01.csv", csv_text.encode())
    assert r.status_code == 201, r.text
    got = reg.client.get("/api/v1/units/T01/rosters/2026-W50", headers=reg.auth("admin")).json()
    assert got["leader"] == {"name": "刘镇长", "phone": "+8613900000009"}
    assert [(s["name"], s["phone"]) for s in got["staff"]] == [
        ("陈干事", "+868334219999"),
        ("周干事", "+8613800000008"),
    ]
    assert got["staff"][0]["shift"] == {
        "days": [1, 2, 3, 4, 5],
        "start": "08:30:00",
        "end": "17:30:00",
    }


def test_import_with_bad_rows_stores_nothing_and_reports_every_row(reg: Any) -> None:
    book = openpyxl.Workbook()
    sheet = book.active
    rows = [
        ["单位编码", "周次", "角色", "姓名", "电话", "顺序", "班次"],
        ["U01", "2026-W49", "值班领导", "王局长", "13900000001", None, None],
        ["U01", "2026-W49", "值班人员", "张三", 13812345678, 1, None],  # a number cell: fine
        ["U02", "2026-W49", "值班领导", "钱局长", "13900000002", None, None],
        ["U02", "2026-W49", "值班人员", "孙五", "0833-12345", 1, None],  # impossible number
        ["U99", "2026-W49", "值班人员", "某人", "13800000000", 1, None],  # unknown unit
        ["T01", "2025-W53", "值班人员", "某人", "13800000000", 1, "weekdays"],  # week + shift
    ]
    for row in rows:
        sheet.append(row)
    buf = io.BytesIO()
    book.save(buf)
    r = _upload(reg, "bad.xlsx", buf.getvalue())
    assert r.status_code == 422
    assert r.headers["content-type"] == "application/problem+json"
    errors = [(e["row"], e["field"]) for e in r.json()["errors"]]
    assert errors == [
        (5, "电话/phone"),
        (6, "单位编码/unit_code"),
        (7, "周次/week"),
        (7, "班次/shift"),
    ]
    assert "nothing was imported" in r.json()["detail"]
    assert _rosters(reg) == 0  # U01's valid rows were not stored either


def test_import_refuses_a_sheet_without_the_required_columns_or_a_leader(reg: Any) -> None:
    r = _upload(reg, "x.csv", "单位编码,姓名\nU01,张三\n".encode())
    assert r.status_code == 422
    assert "missing columns" in r.json()["errors"][0]["message"]
    no_leader = "单位编码,周次,角色,姓名,电话\nU01,2026-W49,值班人员,张三,13812345678\n"
    r = _upload(reg, "x.csv", no_leader.encode())
    assert r.status_code == 422 and "leader" in r.json()["errors"][0]["message"]
    r = reg.client.post(
        "/api/v1/rosters/import",
        files={"file": ("x.csv", no_leader.encode())},
        headers=reg.auth("unit"),
    )
    assert r.status_code == 422 and "leader" in r.json()["errors"][0]["message"]
    r = reg.client.post(
        "/api/v1/rosters/import",
        files={"file": ("x.csv", no_leader.encode())},
        headers=reg.auth("dispatcher"),
    )
    assert r.status_code == 403
    assert _rosters(reg) == 0
