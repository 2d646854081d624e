"""Rosters as spreadsheets (CSV and XLSX), the form units already keep them in.

One row per person: the duty leader (角色 值班领导) and each staff member (角色 值班人员).
Headers are Chinese; the English aliases are accepted on import:

    单位编码 unit_code | 周次 week | 角色 role | 姓名 name | 电话 phone
    顺序 order (optional) | 班次 shift (optional) | 备注 notes (optional)

`班次` is `1-5 08:00-18:00` (ISO weekdays then hours), `6,7`, `18:00-08:00` or empty (all week).
Import is all or nothing: `parse_sheet` returns either the rosters or every row's errors.
An upload is bounded before it is parsed: `MAX_ROWS` rows, `MAX_COLUMNS` columns and, for XLSX,
`MAX_INFLATED_BYTES` of uncompressed content (read from the zip directory, not by inflating),
else `SheetTooLarge`. Names are checked like the API's (`registry.text.check_name`); exported
cells are text, never formulas (`registry.text`).
"""

from __future__ import annotations

import csv
import io
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from sqlalchemy.orm import Session

from registry.duty import InvalidWeek, format_shift, parse_shift_text, parse_week
from registry.numbers import DialPolicy, NumberError
from registry.text import InvalidText, check_name, csv_cell, csv_uncell
from storage import registry as repo
from storage.registry import RosterValues, RosterVersion, StaffEntry

COLUMNS: tuple[tuple[str, str], ...] = (
    ("unit_code", "单位编码"),
    ("week", "周次"),
    ("role", "角色"),
    ("name", "姓名"),
    ("phone", "电话"),
    ("order", "顺序"),
    ("shift", "班次"),
    ("notes", "备注"),
)
XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
REQUIRED = ("unit_code", "week", "role", "name", "phone")
LEADER, STAFF = "值班领导", "值班人员"
_ROLES = {"值班领导": "leader", "领导": "leader", "leader": "leader"} | {
    "值班人员": "staff",
    "人员": "staff",
    "staff": "staff",
}
_HEADER = {zh: key for key, zh in COLUMNS} | {key: key for key, _ in COLUMNS}


@dataclass(frozen=True, slots=True)
class RowError:
    """What is wrong with one sheet row (row 1 is the header)."""

    row: int
    field: str | None
    message: str


@dataclass
class _Group:
    first_row: int
    leader: tuple[str, str] | None = None
    staff: list[StaffEntry] = field(default_factory=list)
    notes: str | None = None
    leader_rows: int = 0


@dataclass(frozen=True, slots=True)
class ImportedRoster:
    """One roster read from a sheet, ready to store as a new version."""

    unit_code: str
    week: str
    values: RosterValues


MAX_ROWS = 5000  # a county's rosters for a week are a few hundred rows
MAX_COLUMNS = 30
MAX_EMPTY_RUN = 1000
MAX_INFLATED_BYTES = 20 * 1024 * 1024
NAME_MAX = 100  # rosters.leader_name and the API's limit
NOTES_MAX = 2000  # the API's limit


class SheetTooLarge(ValueError):
    """The upload is bigger than an import may be (rows, columns or inflated size)."""


def read_table(data: bytes) -> list[list[str]]:
    """The cells of a CSV (UTF-8, with or without BOM; GB18030 tolerated) or XLSX upload;
    SheetTooLarge past the limits."""
    if data[:2] == b"PK":
        return _read_xlsx(data)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = data.decode("gb18030")
    table: list[list[str]] = []
    for row in csv.reader(io.StringIO(text)):
        _check_bounds(len(table) + 1, len(row))
        table.append([csv_uncell(c.strip()).strip() for c in row])
    return table


def _check_bounds(rows: int, columns: int) -> None:
    if rows > MAX_ROWS:
        raise SheetTooLarge(f"more than {MAX_ROWS} rows; split the sheet")
    if columns > MAX_COLUMNS:
        raise SheetTooLarge(f"row {rows} has more than {MAX_COLUMNS} columns")


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def _read_xlsx(data: bytes) -> list[list[str]]:
    import openpyxl

    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        inflated = sum(info.file_size for info in archive.infolist())
    if inflated > MAX_INFLATED_BYTES:
        raise SheetTooLarge(
            f"the workbook inflates to {inflated} bytes (at most {MAX_INFLATED_BYTES})"
        )
    book = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    try:
        sheet = book.worksheets[0]
        table: list[list[str]] = []
        empty_run = 0
        for row in sheet.iter_rows(values_only=True, max_col=MAX_COLUMNS + 1):
            cells = [_cell(v) for v in row]
            while cells and not cells[-1]:
                cells.pop()
            if not cells:
                # formatted but empty rows pad the sheet's declared range; a long run of
                # them is the end of the data, not a reason to read on
                empty_run += 1
                if empty_run > MAX_EMPTY_RUN:
                    break
                table.append(cells)
                continue
            empty_run = 0
            _check_bounds(len(table) + 1, len(cells))
            table.append(cells)
        while table and not table[-1]:
            table.pop()
        return table
    finally:
        book.close()


def parse_sheet(
    table: Sequence[Sequence[str]],
    known_units: set[str],
    policy: DialPolicy,
    *,
    only_unit: str | None = None,
) -> tuple[list[ImportedRoster], list[RowError]]:
    """Rosters grouped by unit and week, or the errors of every bad row (then no rosters).

    `only_unit` (a unit token's own sheet): a row of any other unit is an error of that row.
    """
    if not table:
        return [], [RowError(1, None, "the sheet is empty")]
    columns = [_HEADER.get(h.strip().lower(), _HEADER.get(h.strip())) for h in table[0]]
    missing = [f"{zh}/{key}" for key, zh in COLUMNS if key in REQUIRED and key not in columns]
    if missing:
        return [], [RowError(1, None, f"missing columns: {', '.join(missing)}")]
    errors: list[RowError] = []
    groups: dict[tuple[str, str], _Group] = {}
    for number, cells in enumerate(table[1:], start=2):
        row = {c: (cells[i] if i < len(cells) else "") for i, c in enumerate(columns) if c}
        if not any(row.values()):
            continue
        unit = row.get("unit_code", "")
        if only_unit is not None and unit != only_unit:
            message = f"row for unit {unit!r}: this token may import only {only_unit}'s rows"
            errors.append(RowError(number, "单位编码/unit_code", message))
            continue
        _parse_row(number, row, known_units, policy, groups, errors)
    if errors:
        return [], sorted(errors, key=lambda e: e.row)
    rosters = []
    for (unit, week), g in groups.items():
        if g.leader_rows != 1:
            errors.append(RowError(g.first_row, "角色/role", f"{unit} {week}: needs one leader"))
        elif not g.staff:
            errors.append(RowError(g.first_row, "角色/role", f"{unit} {week}: needs staff"))
        elif g.leader is not None:
            values = RosterValues(g.leader[0], g.leader[1], tuple(g.staff), g.notes)
            rosters.append(ImportedRoster(unit, week, values))
    if errors:
        return [], errors
    return rosters, []


def _parse_row(
    number: int,
    row: dict[str, str],
    known_units: set[str],
    policy: DialPolicy,
    groups: dict[tuple[str, str], _Group],
    errors: list[RowError],
) -> None:
    def fail(col: str, message: str) -> None:
        errors.append(RowError(number, f"{dict(COLUMNS)[col]}/{col}", message))

    before = len(errors)
    unit = row.get("unit_code", "")
    if unit not in known_units:
        fail("unit_code", f"unknown unit {unit!r}")
    week = ""
    try:
        week = parse_week(row.get("week", ""))
    except InvalidWeek as exc:
        fail("week", str(exc))
    role = _ROLES.get(row.get("role", "").strip().lower())
    if role is None:
        fail("role", f"role must be {LEADER}/leader or {STAFF}/staff")
    name = ""
    try:
        name = check_name(row.get("name", ""), max_len=NAME_MAX)
    except InvalidText as exc:
        fail("name", str(exc))
    phone = ""
    try:
        phone = policy.check(row.get("phone", "")).canonical
    except NumberError as exc:
        fail("phone", exc.reason)
    order_text, order = row.get("order", ""), 0
    if order_text and not order_text.isdigit():
        fail("order", "the order must be a whole number")
    elif order_text:
        order = int(order_text)
    shift = None
    try:
        shift = parse_shift_text(row.get("shift", ""))
    except ValueError as exc:
        fail("shift", str(exc))
    if len(row.get("notes", "")) > NOTES_MAX:
        fail("notes", f"the notes are longer than {NOTES_MAX} characters")
    if len(errors) > before:
        return
    group = groups.setdefault((unit, week), _Group(first_row=number))
    if row.get("notes"):
        group.notes = row["notes"]
    if role == "leader":
        group.leader, group.leader_rows = (name, phone), group.leader_rows + 1
    else:
        group.staff.append(StaffEntry(name, phone, order or len(group.staff) + 1, shift))


def roster_rows(rosters: Iterable[RosterVersion]) -> list[list[str]]:
    """The sheet (header first) for rosters: leader row, then staff by order."""
    rows = [[zh for _, zh in COLUMNS]]
    for r in rosters:
        rows.append(
            [r.unit_code, r.week, LEADER, r.leader_name, r.leader_phone, "", "", r.notes or ""]
        )
        for s in sorted(r.staff, key=lambda s: s.order):
            rows.append(
                [
                    r.unit_code,
                    r.week,
                    STAFF,
                    s.name,
                    s.phone,
                    str(s.order),
                    format_shift(s.shift),
                    "",
                ]
            )
    return rows


def template_rows(unit_code: str, week: str, source: RosterVersion | None) -> list[list[str]]:
    """A unit's sheet for `week` in the export's columns: `source` (its roster of that week or
    of an earlier one) moved to `week`, or a leader row and a staff row to fill in."""
    if source is not None:
        rows = roster_rows([source])
        for row in rows[1:]:
            row[1] = week
        return rows
    return [
        [zh for _, zh in COLUMNS],
        [unit_code, week, LEADER, "", "", "", "", ""],
        [unit_code, week, STAFF, "", "", "1", "1-7 08:00-18:00", ""],
    ]


def unit_template(session: Session, unit_code: str, week: str) -> list[list[str]]:
    """The sheet a unit downloads to fill in `week`: its roster of that week, else its latest
    earlier one moved to `week`, else blank leader and staff rows (NotFound for an unknown unit)."""
    return template_rows(unit_code, week, repo.latest_roster_until(session, unit_code, week))


def to_csv(rows: list[list[str]]) -> bytes:
    """UTF-8 with a BOM, so Excel opens the Chinese headers correctly; cells that a
    spreadsheet would evaluate (= + - @ tab CR first) get a leading apostrophe."""
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\r\n").writerows([[csv_cell(c) for c in r] for r in rows])
    return buf.getvalue().encode("utf-8-sig")


def to_xlsx(rows: list[list[str]], title: str) -> bytes:
    """A one-sheet workbook; every cell is a string cell in text format: never a formula
    (openpyxl would store a value beginning with = as one), numbers keep their + and 0."""
    import openpyxl

    book = openpyxl.Workbook()
    sheet = book.active
    sheet.title = title[:31]
    for r, row in enumerate(rows, start=1):
        for c, value in enumerate(row, start=1):
            cell = sheet.cell(row=r, column=c)
            cell.value = value
            cell.data_type = "s"
            cell.number_format = "@"
    buf = io.BytesIO()
    book.save(buf)
    return buf.getvalue()
