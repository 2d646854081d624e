"""Issue 13 findings 3 and 9: exported sheets never carry formulas; names are plain bounded
text; an import is bounded in rows and inflated size before it is parsed."""

from __future__ import annotations

import csv
import io
import re
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openpyxl
import pytest
from sqlalchemy import func, select

from storage.models.registry import Roster
from tests.conftest import ApiHarness, service_settings
from tests.registry.conftest import UNITS, roster_body

WEEK = "2026-W49"
HOSTILE = [
    '=HYPERLINK("http://203.0.113.9/x","点击查看")',
    "=cmd|' /C calc'!A0",
    "+1+1",
    "-2+3",
    "@SUM(1,2)",
]
HEADER = ["单位编码", "周次", "角色", "姓名", "电话"]


def _hostile_roster() -> dict[str, Any]:
    return roster_body(
        leader={"name": HOSTILE[0], "phone": "13900000001"},
        staff=[{"name": n, "phone": "13812345678", "order": i} for i, n in enumerate(HOSTILE, 1)],
        notes="=1+1",
    )


def _export(reg: Any, fmt: str) -> bytes:
    r = reg.client.get(
        f"/api/v1/rosters/export?week={WEEK}&format={fmt}", headers=reg.auth("dispatcher")
    )
    assert r.status_code == 200, r.text
    return bytes(r.content)


def test_a_unit_cannot_plant_formulas_in_the_xlsx_export(reg: Any) -> None:
    r = reg.client.put(
        f"/api/v1/units/U01/rosters/{WEEK}", json=_hostile_roster(), headers=reg.auth("unit")
    )
    assert r.status_code == 201, r.text
    book = openpyxl.load_workbook(io.BytesIO(_export(reg, "xlsx")))
    cells = [c for row in book.active.iter_rows() for c in row if c.value]
    planted = [c for c in cells if str(c.value).startswith(("=", "+", "-", "@"))]
    assert {c.value for c in planted} >= {*HOSTILE, "=1+1"}
    for cell in cells:
        assert cell.data_type == "s", f"{cell.coordinate} {cell.value!r} is {cell.data_type}"
    phones = [c.value for c in cells if c.column == 5 and c.row > 1]
    assert set(phones) == {"+8613900000001", "+8613812345678"}  # text, + kept


def test_csv_export_is_inert_and_imports_back_unchanged(reg: Any) -> None:
    reg.client.put(
        f"/api/v1/units/U01/rosters/{WEEK}", json=_hostile_roster(), headers=reg.auth("unit")
    )
    data = _export(reg, "csv")
    rows = list(csv.reader(io.StringIO(data.decode("utf-8-sig"))))
    for row in rows:
        for cell in row:
            if re.fullmatch(r"\+[0-9]+", cell):
                continue  # a stored phone number: a plus and digits only, nothing to evaluate
            assert not cell.startswith(("=", "+", "-", "@", "\t", "\r")), cell
    assert "'=cmd|' /C calc'!A0" in [r[3] for r in rows]
    r = reg.client.post(
        "/api/v1/rosters/import", files={"file": ("back.csv", data)}, headers=reg.auth("admin")
    )
    assert r.status_code == 201, r.text
    again = reg.client.get(f"/api/v1/units/U01/rosters/{WEEK}", headers=reg.auth("admin")).json()
    assert again["version"] == 2
    assert again["leader"]["name"] == HOSTILE[0]
    assert [s["name"] for s in again["staff"]] == HOSTILE
    assert again["staff"][0]["phone"] == "+8613812345678"
    assert again["notes"] == "=1+1"


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/api/v1/units", {"code": "U09", "name": "县供电\u202e司公", "kind": "linkage"}, "name"),
        ("/api/v1/units", {"code": "U09", "name": "县供电\r\n公司", "kind": "linkage"}, "name"),
        (
            f"/api/v1/units/U01/rosters/{WEEK}",
            roster_body(leader={"name": "王\u2066局长", "phone": "13900000001"}),
            "leader.name",
        ),
        (
            f"/api/v1/units/U01/rosters/{WEEK}",
            roster_body(staff=[{"name": "张\x00三", "phone": "13812345678"}]),
            "staff.0.name",
        ),
        (
            f"/api/v1/units/U01/rosters/{WEEK}",
            roster_body(staff=[{"name": "张\u200b三", "phone": "13812345678"}]),
            "staff.0.name",
        ),
    ],
)
def test_control_and_bidi_characters_in_names_are_422_naming_the_field(
    reg: Any, path: str, body: dict[str, Any], field: str
) -> None:
    send = reg.client.post if path == "/api/v1/units" else reg.client.put
    r = send(path, json=body, headers=reg.auth("admin"))
    assert r.status_code == 422, r.text
    assert r.headers["content-type"] == "application/problem+json"
    fields = [e["field"] for e in r.json()["errors"]]
    assert fields == [f"body.{field}"]
    # a NUL is refused for every field by the app-wide guard (api/nul_guard.py) before the
    # name's own check sees it
    nul = path != "/api/v1/units" and "\x00" in str(body.get("staff", [{}])[0].get("name"))
    said = "NUL character" if nul else "control or formatting character"
    assert said in r.json()["detail"], r.json()
    assert reg.client.get("/api/v1/units/U09", headers=reg.auth("admin")).status_code == 404
    with reg.session_factory() as s:
        assert s.scalar(select(func.count()).select_from(Roster)) == 0


def _xlsx(rows: list[list[str]]) -> bytes:
    book = openpyxl.Workbook()
    for row in rows:
        book.active.append(row)
    buf = io.BytesIO()
    book.save(buf)
    return buf.getvalue()


@pytest.fixture
def reg_any_db(tmp_path: Path, db_url: str) -> Iterator[ApiHarness]:
    """The registry harness on SQLite and on PostgreSQL (column lengths are enforced there)."""
    from fastapi.testclient import TestClient

    from api.app import create_app
    from storage.engine import session_scope
    from storage.models.auth import Role
    from storage.tokens import create_token

    app = create_app(service_settings(tmp_path, database_url=db_url))  # type: ignore[arg-type]
    with TestClient(app, raise_server_exceptions=False) as client:
        factory = app.state.service.session_factory
        with session_scope(factory) as s:
            tokens = {"admin": create_token(s, name="admin", role=Role.ADMIN, unit_code=None)}
        harness = ApiHarness(client, tokens, factory)
        for unit in UNITS:
            assert client.post("/api/v1/units", json=unit, headers=harness.auth("admin")).is_success
        yield harness
        app.state.service.engine.dispose()


@pytest.mark.parametrize("fmt", ["csv", "xlsx"])
def test_imported_names_are_length_checked_not_a_500(reg_any_db: ApiHarness, fmt: str) -> None:
    api = reg_any_db
    rows = [
        HEADER,
        ["U01", WEEK, "值班领导", "王" * 150, "13900000001"],
        ["U01", WEEK, "值班人员", "张\u202e三", "13812345678"],
    ]
    if fmt == "xlsx":
        data = _xlsx(rows)
    else:
        buf = io.StringIO()
        csv.writer(buf).writerows(rows)
        data = buf.getvalue().encode()
    r = api.client.post(
        "/api/v1/rosters/import",
        files={"file": (f"long.{fmt}", data)},
        headers=api.auth("admin"),
    )
    assert r.status_code == 422, r.text
    errors = r.json()["errors"]
    assert [(e["row"], e["field"]) for e in errors] == [(2, "姓名/name"), (3, "姓名/name")]
    assert "longer than 100" in errors[0]["message"]
    with api.session_factory() as s:
        assert s.scalar(select(func.count()).select_from(Roster)) == 0


def _inflating_xlsx(rows: int) -> bytes:
    """A valid workbook whose sheet holds `rows` valid roster rows (a few hundred KB zipped)."""
    base = _xlsx([HEADER, ["U01", WEEK, "值班领导", "王局长", "13900000001"]])
    src = zipfile.ZipFile(io.BytesIO(base))
    sheet = src.read("xl/worksheets/sheet1.xml").decode()
    head, _, _ = sheet.partition("<sheetData>")
    cells = "".join(f'<c t="inlineStr"><is><t>{v}</t></is></c>' for v in HEADER)
    leader = "".join(
        f'<c t="inlineStr"><is><t>{v}</t></is></c>'
        for v in ("U01", WEEK, "值班领导", "王局长", "13900000001")
    )
    body = [f'<row r="1">{cells}</row>', f'<row r="2">{leader}</row>']
    row = "".join(
        f'<c t="inlineStr"><is><t>{v}</t></is></c>'
        for v in ("U01", WEEK, "值班人员", "张三", "13812345678")
    )
    body.extend(f'<row r="{n}">{row}</row>' for n in range(3, rows + 3))
    head = re.sub(r'<dimension ref="[^"]*" */>', f'<dimension ref="A1:E{rows + 2}"/>', head)
    new_sheet = head + "<sheetData>" + "".join(body) + "</sheetData></worksheet>"
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            data = new_sheet.encode() if info.filename.endswith("sheet1.xml") else src.read(info)
            dst.writestr(info.filename, data)
    return out.getvalue()


def test_a_sheet_inflating_to_100k_rows_is_refused_quickly(reg: Any) -> None:
    data = _inflating_xlsx(100_000)
    assert len(data) < 1024 * 1024
    started = time.process_time()
    r = reg.client.post(
        "/api/v1/rosters/import", files={"file": ("big.xlsx", data)}, headers=reg.auth("admin")
    )
    cpu = time.process_time() - started
    assert r.status_code == 413, r.text[:300]
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["type"].endswith("/too-large")
    assert "5000 rows" in r.json()["detail"] or "inflates" in r.json()["detail"]
    assert cpu < 3.0, f"{cpu:.1f} s of CPU"  # the old import spent 7.2 s parsing it
    with reg.session_factory() as s:
        assert s.scalar(select(func.count()).select_from(Roster)) == 0


def test_rows_over_the_cap_are_refused_before_parsing(reg: Any) -> None:
    data = _inflating_xlsx(6000)  # inflates to under the byte cap: the row cap answers
    r = reg.client.post(
        "/api/v1/rosters/import", files={"file": ("rows.xlsx", data)}, headers=reg.auth("admin")
    )
    assert r.status_code == 413 and "more than 5000 rows" in r.json()["detail"], r.text[:300]
    lines = "\r\n".join([",".join(HEADER)] + ["U01,2026-W49,值班人员,张三,13812345678"] * 6000)
    r = reg.client.post(
        "/api/v1/rosters/import",
        files={"file": ("rows.csv", lines.encode())},
        headers=reg.auth("admin"),
    )
    assert r.status_code == 413 and "more than 5000 rows" in r.json()["detail"], r.text[:300]


def test_a_zip_bomb_is_refused_from_its_directory(reg: Any) -> None:
    base = zipfile.ZipFile(io.BytesIO(_xlsx([HEADER])))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in base.infolist():
            dst.writestr(info.filename, base.read(info))
        dst.writestr("xl/media/padding.bin", b"\0" * (64 * 1024 * 1024))
    assert len(out.getvalue()) < 1024 * 1024
    r = reg.client.post(
        "/api/v1/rosters/import",
        files={"file": ("bomb.xlsx", out.getvalue())},
        headers=reg.auth("admin"),
    )
    assert r.status_code == 413, r.text[:300]
    assert "inflates to" in r.json()["detail"]


def test_survey_statistics_exports_keep_text_as_text() -> None:
    """The stats breakdown by incident type or dispatcher exports text someone typed."""
    from api.schemas.surveys import table_csv, table_xlsx

    rows: list[list[object]] = [["警情类型 type", "已完成 finished"], [HOSTILE[1], 3], ["-1", 2]]
    sheet = openpyxl.load_workbook(io.BytesIO(table_xlsx(rows, "type"))).active
    assert [(c.value, c.data_type) for c in sheet["A"]][1:] == [(HOSTILE[1], "s"), ("-1", "s")]
    assert [(c.value, c.data_type) for c in sheet["B"]][1:] == [(3, "n"), (2, "n")]
    cells = list(csv.reader(io.StringIO(table_csv(rows).lstrip("\ufeff"))))
    assert [r[0] for r in cells[1:]] == ["'" + HOSTILE[1], "'-1"]
