"""The operator's commands of docs/operations.md and the README, run as written: a wrong input
(unknown token id or unit, a missing or GBK file, an unwritable backup target, a database
that is down, a revision that does not exist) gives one clear `error:` line and a non-zero
exit, never a Python traceback, and changes nothing."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from api.cli import app
from storage.engine import make_engine, make_session_factory, session_scope
from storage.models.auth import ApiToken, AuditEntry

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    data = tmp_path / "data"
    monkeypatch.setenv("LINKCALL_DATA_DIR", str(data))
    monkeypatch.delenv("LINKCALL_DATABASE_URL", raising=False)
    monkeypatch.delenv("LINKCALL_CONFIG", raising=False)
    # Handlers bound to one invocation's captured stderr would outlive it.
    monkeypatch.setattr("api.cli.configure_logging", lambda *a, **k: None)
    monkeypatch.setattr("api.cli_units.configure_logging", lambda *a, **k: None)
    return data


def _run(*args: str) -> tuple[int, str, str]:
    r = CliRunner().invoke(app, list(args))
    if r.exception is not None and not isinstance(r.exception, SystemExit):
        raise AssertionError(f"linkcall {' '.join(args)} raised {r.exception!r}") from r.exception
    return r.exit_code, r.stdout, r.stderr


def _tokens(data: Path) -> list[ApiToken]:
    engine = make_engine(f"sqlite:///{data / 'linkcall.sqlite3'}")
    try:
        with session_scope(make_session_factory(engine)) as s:
            rows = list(s.scalars(select(ApiToken)))
            s.expunge_all()
            return rows
    finally:
        engine.dispose()


def _audit(data: Path) -> list[tuple[str, str, str | None]]:
    engine = make_engine(f"sqlite:///{data / 'linkcall.sqlite3'}")
    try:
        with session_scope(make_session_factory(engine)) as s:
            return [
                (a.action, a.resource_id, a.client)
                for a in s.scalars(select(AuditEntry).order_by(AuditEntry.id))
            ]
    finally:
        engine.dispose()


def test_revoking_an_unknown_token_id_is_a_clear_error(data_dir: Path) -> None:
    code, _, err = _run("tokens", "revoke", "0123456789abcdef")
    assert code == 2
    assert "no token with id '0123456789abcdef'" in err and "tokens list" in err


def test_a_unit_token_needs_a_unit_that_exists_and_cli_tokens_are_audited(
    data_dir: Path,
) -> None:
    code, out, err = _run("tokens", "create", "--role", "unit", "--unit", "U01")
    assert code == 2, out
    assert "no unit 'U01'" in err and "units add" in err
    assert _tokens(data_dir) == []

    assert _run("units", "add", "U01", "县供电公司")[0] == 0
    code, out, _ = _run("tokens", "create", "--role", "unit", "--unit", "U01")
    assert code == 0 and out.strip().startswith("lc_")
    (token,) = _tokens(data_dir)
    assert token.unit_code == "U01"
    assert _run("tokens", "revoke", token.id)[0] == 0
    assert _audit(data_dir)[-2:] == [
        ("token.create", token.id, "cli"),
        ("token.revoke", token.id, "cli"),
    ]
    engine = make_engine(f"sqlite:///{data_dir / 'linkcall.sqlite3'}")
    try:  # the same detail as the API's entry: who the token is for
        with session_scope(make_session_factory(engine)) as s:
            created = s.scalars(select(AuditEntry).where(AuditEntry.action == "token.create")).one()
            assert created.detail["name"] == "unit-U01" and created.detail["role"] == "unit"
    finally:
        engine.dispose()


def test_units_import_reads_gbk_and_refuses_a_missing_file(data_dir: Path, tmp_path: Path) -> None:
    code, _, err = _run("units", "import", str(tmp_path / "nosuch.csv"))
    assert code == 2 and "cannot read" in err and "nosuch.csv" in err
    code, _, err = _run("units", "import", str(tmp_path))
    assert code == 2 and "cannot read" in err

    # Excel on a Chinese Windows saves "CSV" as GBK: read like the roster import reads it.
    sheet = tmp_path / "units-gbk.csv"
    sheet.write_bytes("单位编码,单位名称,类型\nT01,城关镇,乡镇\n".encode("gbk"))
    code, out, err = _run("units", "import", str(sheet))
    assert code == 0, err
    assert "1 new" in out
    assert "城关镇" in _run("units", "list")[1]


def test_units_export_to_a_missing_directory_is_a_clear_error(
    data_dir: Path, tmp_path: Path
) -> None:
    code, _, err = _run("units", "export", str(tmp_path / "no" / "units.csv"))
    assert code == 2 and "cannot write" in err


def test_a_backup_into_a_place_it_cannot_write_is_a_clear_error(
    data_dir: Path, tmp_path: Path
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    code, _, err = _run("backup", str(blocker / "linkcall-2026-12-06"))
    assert code == 2 and "error: backup failed" in err


def test_db_upgrade_reports_the_revision_the_database_is_at(data_dir: Path) -> None:
    # asking before there is a database says so, and creates nothing (a mistyped path would
    # otherwise leave an empty database behind and answer "empty")
    code, _, err = _run("db", "current")
    assert code == 2 and f"no database at {data_dir / 'linkcall.sqlite3'}" in err, err
    assert not data_dir.exists()
    code, out, _ = _run("db", "upgrade")
    assert code == 0
    head = out.split()[-1]
    # Alembic's upgrade never goes down: asking for an older revision leaves the head.
    code, out, _ = _run("db", "upgrade", "0012")
    assert code == 0 and out.split()[-1] == head
    code, _, err = _run("db", "upgrade", "0099")
    assert code == 2 and "0099" in err
    code, out, _ = _run("db", "current")
    assert code == 0 and out.split()[-1] == head


def test_every_command_says_in_one_line_that_the_database_is_down(tmp_path: Path) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "LINKCALL_DATA_DIR": str(tmp_path / "data"),
        "LINKCALL_DATABASE_URL": f"postgresql://linkcall:SECRET@127.0.0.1:{port}/linkcall",
    }
    env.pop("LINKCALL_CONFIG", None)
    r = subprocess.run(
        [sys.executable, "-m", "api", "tokens", "list"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert r.returncode == 1
    assert "Traceback" not in r.stderr and len(r.stderr.splitlines()) <= 3, r.stderr
    assert "error: database unavailable" in r.stderr
    assert f"127.0.0.1:{port}" in r.stderr and "SECRET" not in r.stderr


def _main(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str
) -> tuple[int, str]:
    """The console script's entry point in this process: exit code and stderr."""
    from api.cli import main

    monkeypatch.setattr(sys, "argv", ["linkcall", *args])
    with pytest.raises(SystemExit) as exited:
        main()
    code = exited.value.code
    return (code if isinstance(code, int) else 1), capsys.readouterr().err


def test_a_wrong_setting_or_config_file_is_named_without_a_traceback(
    data_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("LINKCALL_SIP_LISTEN", "5070")
    code, err = _main(monkeypatch, capsys, "tokens", "list")
    assert code == 2
    assert err == "error: configuration: LINKCALL_SIP_LISTEN must be host:port, got '5070'\n"
    monkeypatch.delenv("LINKCALL_SIP_LISTEN")

    monkeypatch.setenv("LINKCALL_MEDIA_WORKERS", "two")
    code, err = _main(monkeypatch, capsys, "serve", "--port", "1")
    assert code == 2 and err.startswith("error: configuration: LINKCALL_MEDIA_WORKERS: ")
    monkeypatch.delenv("LINKCALL_MEDIA_WORKERS")

    monkeypatch.setenv("LINKCALL_CONFIG", str(tmp_path / "missing.toml"))
    code, err = _main(monkeypatch, capsys, "db", "current")
    assert code == 2 and "LINKCALL_CONFIG points to a missing file" in err
    bad = tmp_path / "linkcall.toml"
    bad.write_text('sip_listen = "127.0.0.1:5070\n')
    monkeypatch.setenv("LINKCALL_CONFIG", str(bad))
    code, err = _main(monkeypatch, capsys, "db", "current")
    assert code == 2 and f"{bad} is not valid TOML" in err and "Traceback" not in err


def test_a_setting_name_nothing_reads_is_named_with_the_closest_setting(
    data_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A typo in a setting's name changes nothing; the operator is told which name was not
    read, and what it was probably meant to be (environment and TOML file alike)."""
    from api.settings import unknown_settings

    config = tmp_path / "linkcall.toml"
    config.write_text('recording_retention_day = 30\nlog_level = "INFO"\nfrobnicate = 1\n')
    env = {
        "LINKCALL_RING_TIMEOUT_UNIT": "20",
        "LINKCALL_LOG_LEVEL": "INFO",
        "LINKCALL_CONFIG": str(config),
        "LINKCALL_HTTP_PORT": "8080",
        "LINKCALL_TEST_PG_URL": "postgresql://x",
        "PATH": "/usr/bin",
    }
    assert unknown_settings(env, config) == [
        "environment variable LINKCALL_RING_TIMEOUT_UNIT is not a setting "
        "(did you mean LINKCALL_RING_TIMEOUT_UNIT_S?)",
        f"{config}: key 'frobnicate' is not a setting",
        f"{config}: key 'recording_retention_day' is not a setting "
        "(did you mean recording_retention_days?)",
    ]

    monkeypatch.setenv("LINKCALL_CONFIG", str(config))
    monkeypatch.setenv("LINKCALL_RING_TIMEOUT_UNIT", "20")
    with caplog.at_level("WARNING", logger="api.settings"):
        code, _ = _main(monkeypatch, capsys, "tokens", "list")
    assert code == 0
    warned = [r.getMessage() for r in caplog.records if r.name == "api.settings"]
    assert any("LINKCALL_RING_TIMEOUT_UNIT is not a setting" in w for w in warned), warned
    assert any("'recording_retention_day' is not a setting" in w for w in warned), warned
