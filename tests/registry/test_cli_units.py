"""`linkcall units`: add, list, import (all or nothing) and export."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from api.cli_units import units_app


@pytest.fixture
def runner(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setenv("LINKCALL_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("LINKCALL_DATABASE_URL", raising=False)
    monkeypatch.delenv("LINKCALL_CONFIG", raising=False)
    # Handlers bound to one invocation's captured stderr would outlive it.
    monkeypatch.setattr("api.cli_units.configure_logging", lambda *a, **k: None)
    return CliRunner()


def test_add_import_export_and_list(runner: CliRunner, tmp_path: Path) -> None:
    r = runner.invoke(units_app, ["add", "L02", "县供电公司", "--fallback", "0833-4210002"])
    assert r.exit_code == 0, r.output
    r = runner.invoke(units_app, ["add", "L02", "重复", "--fallback", "0833-4210002"])
    assert r.exit_code == 2

    bad = tmp_path / "bad.csv"
    bad.write_text(
        "单位编码,单位名称,类型,备用号码\nT01,玉津镇,乡镇,0833-4310001\nT02,孝姑镇,街道,\nT03,石溪镇,乡镇,12\n",
        encoding="utf-8",
    )
    r = runner.invoke(units_app, ["import", str(bad)])
    assert r.exit_code == 2
    assert "line 3" in r.output and "line 4" in r.output and "nothing was imported" in r.output
    assert "T01" not in runner.invoke(units_app, ["list"]).stdout

    good = tmp_path / "good.csv"
    good.write_text(
        "code,name,kind,fallback_number,active\n"
        "T01,玉津镇,township,0833-4310001,true\n"
        "L02,县供电公司（国网）,linkage,0833-4210002,否\n",
        encoding="utf-8",
    )
    r = runner.invoke(units_app, ["import", str(good)])
    assert r.exit_code == 0, r.output
    assert "1 new, 1 updated" in r.output

    out = tmp_path / "units.csv"
    assert runner.invoke(units_app, ["export", str(out)]).exit_code == 0
    assert out.read_text(encoding="utf-8-sig").splitlines() == [
        "单位编码,单位名称,类型,备用号码,启用",
        "L02,县供电公司（国网）,联动单位,+868334210002,否",
        "T01,玉津镇,乡镇,+868334310001,是",
    ]
    # The exported file imports back unchanged.
    r = runner.invoke(units_app, ["import", str(out)])
    assert r.exit_code == 0 and "0 new, 2 updated" in r.output
    listed = runner.invoke(units_app, ["list", "--kind", "township"]).stdout
    assert "T01" in listed and "L02" not in listed


def test_cli_changes_are_audited(runner: CliRunner, tmp_path: Path) -> None:
    from sqlalchemy import select

    from storage.engine import make_engine, make_session_factory
    from storage.models.auth import AuditEntry

    assert runner.invoke(units_app, ["add", "L03", "县自来水公司"]).exit_code == 0
    engine = make_engine(f"sqlite:///{tmp_path / 'data' / 'linkcall.sqlite3'}")
    try:
        with make_session_factory(engine)() as s:
            rows = s.execute(
                select(AuditEntry.action, AuditEntry.resource_id, AuditEntry.actor)
            ).all()
    finally:
        engine.dispose()
    assert [tuple(r) for r in rows] == [("unit.create", "L03", "system")]
