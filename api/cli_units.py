"""`linkcall units`: list, add, import and export the units on the duty list.

The units CSV has the columns 单位编码/code, 单位名称/name, 类型/kind (联动单位/linkage,
乡镇/township), 备用号码/fallback_number, 启用/active (是/否, true/false). Import is all or
nothing and upserts by code. Mounted in api/cli.py with `app.add_typer(units_app, name="units")`.
"""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path
from typing import Annotated

import typer
from sqlalchemy.orm import Session, sessionmaker

from api.logs import configure_logging
from api.schemas.registry import UNIT_CODE
from api.settings import Settings
from registry.numbers import NumberError
from registry.text import InvalidText, check_name, csv_cell, csv_uncell
from storage import audit, migrate
from storage import registry as repo
from storage.engine import make_engine, make_session_factory, session_scope
from storage.errors import Conflict
from storage.models.registry import UnitKind
from storage.registry import UnitInfo

units_app = typer.Typer(help="Units on the duty list (联动单位 and 乡镇).", no_args_is_help=True)

HEADER = ("单位编码", "单位名称", "类型", "备用号码", "启用")
_ALIASES = {
    "单位编码": "code", "code": "code", "单位名称": "name", "name": "name", "类型": "kind",
    "kind": "kind", "备用号码": "fallback_number", "fallback_number": "fallback_number",
    "启用": "active", "active": "active",
}  # fmt: skip
_KINDS = {"联动单位": UnitKind.LINKAGE, "linkage": UnitKind.LINKAGE} | {
    "乡镇": UnitKind.TOWNSHIP,
    "township": UnitKind.TOWNSHIP,
}
_KIND_ZH = {UnitKind.LINKAGE: "联动单位", UnitKind.TOWNSHIP: "乡镇"}
_TRUE, _FALSE = {"", "是", "true", "1", "yes"}, {"否", "false", "0", "no"}


def _factory() -> tuple[Settings, sessionmaker[Session]]:
    settings = Settings()
    configure_logging(settings.log_level, settings.log_format, settings.node)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    migrate.upgrade(settings.resolved_database_url)
    return settings, make_session_factory(make_engine(settings.resolved_database_url))


def _fallback(raw: str, settings: Settings) -> str | None:
    if not raw.strip():
        return None
    return settings.dial_policy.check(raw).canonical


@units_app.command("list")
def units_list(
    kind: Annotated[UnitKind | None, typer.Option(help="linkage or township")] = None,
) -> None:
    """List units: code, kind, active, fallback number, name."""
    _, factory = _factory()
    with session_scope(factory) as session:
        for u in repo.list_units(session, kind=kind):
            state = "active" if u.active else "inactive"
            typer.echo(
                f"{u.code:<8} {u.kind.value:<9} {state:<9} {u.fallback_number or '-':<24} {u.name}"
            )


@units_app.command("add")
def units_add(
    code: str,
    name: str,
    kind: Annotated[UnitKind, typer.Option(help="linkage or township")] = UnitKind.LINKAGE,
    fallback: Annotated[str, typer.Option(help="standing fallback number")] = "",
) -> None:
    """Add one unit."""
    settings, factory = _factory()
    try:
        if not re.fullmatch(UNIT_CODE, code):
            raise InvalidText("the code must be letters, digits, - or _ (at most 40)")
        name = check_name(name, max_len=200)
        number = _fallback(fallback, settings)
        with session_scope(factory) as session:
            repo.create_unit(session, code=code, name=name, kind=kind, fallback_number=number)
            audit.record(session, None, "unit.create", "unit", code, client="cli")
    except (NumberError, InvalidText, Conflict) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    typer.echo(f"added {code} {name}")


def parse_units_csv(text: str, settings: Settings) -> tuple[list[UnitInfo], list[str]]:
    """Units from CSV text, or the errors of every bad line (then no units)."""
    rows = list(csv.reader(io.StringIO(text)))
    if not rows:
        return [], ["line 1: the file is empty"]
    columns = [_ALIASES.get(h.strip().lower(), _ALIASES.get(h.strip(), "")) for h in rows[0]]
    if not {"code", "name", "kind"} <= set(columns):
        return [], ["line 1: needs the columns 单位编码/code, 单位名称/name, 类型/kind"]
    units, errors = [], []
    for line, cells in enumerate(rows[1:], start=2):
        row = {
            c: (csv_uncell(cells[i].strip()).strip() if i < len(cells) else "")
            for i, c in enumerate(columns)
            if c
        }
        if not any(row.values()):
            continue
        kind = _KINDS.get(row.get("kind", "").lower())
        active = row.get("active", "").lower()
        try:
            number = _fallback(row.get("fallback_number", ""), settings)
        except NumberError as exc:
            errors.append(f"line {line}: fallback number: {exc.reason}")
            continue
        try:
            row["name"] = check_name(row.get("name", ""), max_len=200) if row.get("name") else ""
        except InvalidText as exc:
            errors.append(f"line {line}: name: {exc}")
            continue
        if not row.get("code") or not row.get("name") or kind is None:
            errors.append(f"line {line}: needs a code, a name and a kind (联动单位/乡镇)")
        elif not re.fullmatch(UNIT_CODE, row["code"]):
            errors.append(f"line {line}: the code must be letters, digits, - or _ (at most 40)")
        elif active not in _TRUE | _FALSE:
            errors.append(f"line {line}: active must be 是/否 or true/false")
        else:
            units.append(UnitInfo(row["code"], row["name"], kind, number, active in _TRUE))
    return ([], errors) if errors else (units, [])


@units_app.command("import")
def units_import(path: Path) -> None:
    """Create or update units from a CSV file (UTF-8, or GB18030 as Excel saves it; all lines or
    none)."""
    settings, factory = _factory()
    try:
        data = path.read_bytes()
    except OSError as exc:
        typer.echo(f"error: cannot read {path}: {exc.strerror or exc}", err=True)
        raise typer.Exit(2) from exc
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = data.decode("gb18030", errors="replace")  # Excel's "CSV" on Chinese Windows
    units, errors = parse_units_csv(text, settings)
    if errors:
        for e in errors:
            typer.echo(f"error: {e}", err=True)
        typer.echo("nothing was imported", err=True)
        raise typer.Exit(2)
    with session_scope(factory) as session:
        created = sum(repo.upsert_unit(session, u) for u in units)
        for u in units:
            audit.record(session, None, "unit.import", "unit", u.code, client="cli")
    typer.echo(f"imported {len(units)} unit(s): {created} new, {len(units) - created} updated")


@units_app.command("export")
def units_export(
    path: Annotated[Path | None, typer.Argument(help="default: stdout")] = None,
) -> None:
    """Write every unit as CSV (UTF-8 with BOM when written to a file, for Excel)."""
    _, factory = _factory()
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(HEADER)
    with session_scope(factory) as session:
        for u in repo.list_units(session):
            cells = [
                u.code,
                u.name,
                _KIND_ZH[u.kind],
                u.fallback_number or "",
                "是" if u.active else "否",
            ]
            writer.writerow([csv_cell(c) for c in cells])
    if path is None:
        typer.echo(buf.getvalue(), nl=False)
    else:
        try:
            path.write_text(buf.getvalue(), encoding="utf-8-sig")
        except OSError as exc:
            typer.echo(f"error: cannot write {path}: {exc.strerror or exc}", err=True)
            raise typer.Exit(2) from exc
        typer.echo(f"wrote {path}")
