"""Issue 14, backup and restore: units, a roster, a survey and a recorded bridge with the lab
phones; `linkcall backup` while the service runs; the service stopped and its database and data
directory wiped; `linkcall restore` brings back the same rows, and every hash verifies.
Once on SQLite, once on PostgreSQL."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import create_engine, select, text

from storage.base import Base
from tests.bridges.conftest import BridgeLab

pytestmark = [pytest.mark.integration, pytest.mark.slow]

USERS = {"caller": "2001", "dispatcher": "2002", "unit": "2003"}
TONES = {"caller": 400.0, "dispatcher": 1000.0, "unit": 1800.0}


def _db_url(request: pytest.FixtureRequest) -> str:
    return str(request.getfixturevalue("db_url"))


# liveness, not records: a running node rewrites its heartbeat every few seconds
VOLATILE = {"nodes": {"heartbeat_at", "state"}}


def _rows(url: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table of the schema, in primary-key order (without the columns of
    VOLATILE)."""
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            out = {}
            for t in Base.metadata.sorted_tables:
                cols = [c for c in t.columns if c.name not in VOLATILE.get(t.name, set())]
                query = select(*cols).order_by(*t.primary_key.columns)
                out[t.name] = [tuple(r) for r in conn.execute(query)]
            out["alembic_version"] = list(
                conn.execute(text("SELECT version_num FROM alembic_version"))
            )
            return out
    finally:
        engine.dispose()


def _without(rows: dict[str, list[tuple[Any, ...]]], action: str) -> dict[str, list[Any]]:
    """`rows` without the audit entries of `action`."""
    return {**rows, "audit_log": [r for r in rows["audit_log"] if action not in r]}


def _cli(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "api", *args], env=env, capture_output=True, text=True, timeout=300
    )


def _wipe_dir(path: Path) -> None:
    for p in path.rglob("*"):
        if not p.is_symlink():
            p.chmod(p.stat().st_mode | stat.S_IWUSR | stat.S_IXUSR if p.is_dir() else 0o644)
    shutil.rmtree(path)


@pytest.mark.parametrize("bridge_lab", [{"database_url": _db_url}], indirect=True)
def test_backup_wipe_restore_gives_the_same_rows_and_verified_recordings(
    db_url: str, bridge_lab: BridgeLab, tmp_path: Path
) -> None:
    lab = bridge_lab
    phones = {role: lab.phone(user, tone_hz=TONES[role]) for role, user in USERS.items()}
    unit = {"code": "L07", "name": "县供电公司", "kind": "linkage"}
    assert lab.post("/api/v1/units", role="admin", json=unit).status_code == 201
    iso = datetime.now(ZoneInfo("Asia/Shanghai")).isocalendar()
    roster = {  # the staff member answers first; the leader is the fallback, never dialled here
        "leader": {"name": "王队长", "phone": "2006"},
        "staff": [{"name": "张三", "phone": USERS["unit"], "order": 1}],
    }
    resp = lab.http.put(
        f"/api/v1/units/L07/rosters/{iso.year}-W{iso.week:02d}",
        json=roster,
        headers=lab.live.auth("admin"),
    )
    assert resp.status_code in (200, 201), resp.text
    survey = lab.post(
        "/api/v1/surveys",
        json={"number": "13812345678", "not_before": "2030-01-02T09:00:00+08:00"},
    )
    assert survey.status_code == 201, survey.text

    created = lab.post(
        "/api/v1/bridges",
        json={
            "caller": {"number": USERS["caller"]},
            "dispatcher": {"number": USERS["dispatcher"]},
            "unit": {"unit_code": "L07"},
        },
    )
    assert created.status_code == 202, created.text
    call_id = created.json()["id"]
    lab.wait_bridge(
        call_id,
        lambda b: b["state"] == "connected" and all(x["state"] == "connected" for x in b["legs"]),
    )
    time.sleep(2.0)
    assert lab.post(f"/api/v1/bridges/{call_id}/end").status_code == 200
    body = lab.wait_bridge(call_id, lambda b: b["state"] == "ended" and b["recording_id"])
    for phone in phones.values():
        phone.wait_closed(10)
    deadline = time.monotonic() + 15
    while True:
        meta = lab.get(f"/api/v1/recordings/{body['recording_id']}", role="supervisor").json()
        if meta["state"] == "finalised":
            break
        assert time.monotonic() < deadline, meta
        time.sleep(0.2)
    assert set(meta["tracks"]) == {"mixed", "caller", "dispatcher", "unit"}

    settings = lab.live.app.state.service.settings  # type: ignore[attr-defined]
    env = {
        **os.environ,
        "LINKCALL_DATA_DIR": str(settings.data_dir),
        "LINKCALL_DATABASE_URL": db_url,
        "LINKCALL_SIP_LISTEN": settings.sip_listen,
    }
    env.pop("LINKCALL_CONFIG", None)
    backup_dir = tmp_path / "backup"
    ahead = _rows(db_url)
    done = _cli(["backup", str(backup_dir)], env)  # the service is running
    assert done.returncode == 0, done.stderr
    before = _rows(db_url)
    # nothing moved meanwhile but the backup's own audit entry (in the copy too): the
    # comparison below is fair
    assert _without(before, "recording.backup") == ahead
    assert len(before["audit_log"]) == len(ahead["audit_log"]) + 1
    assert len(before["units"]) == 1 and len(before["surveys"]) == 1
    assert len(before["recordings"]) == 1 and len(before["call_attempts"]) >= 3
    sums = subprocess.run(["sha256sum", "-c", "--quiet", "SHA256SUMS"], cwd=backup_dir)
    assert sums.returncode == 0

    lab.live.stop()
    refused = _cli(["backup", str(backup_dir)], env)
    assert refused.returncode == 2 and "not empty" in refused.stderr

    # the disk dies: database and data directory gone
    _wipe_dir(settings.data_dir)
    if db_url.startswith("sqlite"):
        Path(db_url.removeprefix("sqlite:///")).unlink()
    else:
        schema = db_url.split("search_path%3D", 1)[1]
        engine = create_engine(db_url.split("?", 1)[0], isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        engine.dispose()

    done = _cli(["restore", str(backup_dir)], env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 problem(s)" in done.stdout and "1 recording(s) checked" in done.stdout
    restored = _rows(db_url)
    assert _without(restored, "backup.restore") == before  # and the restore is on record
    assert len(restored["audit_log"]) == len(before["audit_log"]) + 1
    rec_dir = settings.recordings_dir / Path(meta["tracks"]["mixed"]["file"]).parent
    sealed = subprocess.run(["sha256sum", "-c", "--quiet", "SHA256SUMS"], cwd=rec_dir)
    assert sealed.returncode == 0
    check = _cli(["recordings", "check"], env)
    assert check.returncode == 0 and "0 recording(s) with problems" in check.stdout, check.stdout

    # a damaged backup is refused before anything is touched
    checked = _rows(db_url)  # (the check stored its verdict and audited it)
    track = backup_dir / "recordings" / meta["tracks"]["unit"]["file"]
    track.chmod(0o644)
    with open(track, "r+b") as f:
        f.seek(3000)
        f.write(b"\x07" * 16)
    damaged = _cli(["restore", str(backup_dir)], env)
    assert damaged.returncode == 2 and "damaged" in damaged.stderr, damaged.stderr
    assert _rows(db_url) == checked
