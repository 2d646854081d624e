"""`linkcall restore` is all or nothing: when the recordings already in place cannot be moved
aside (a mounted volume), it refuses before the database is touched."""

from __future__ import annotations

from pathlib import Path

import pytest
from pytest_mock import MockerFixture
from sqlalchemy import select

from api import backup as backup_mod
from api.settings import Settings
from storage import migrate
from storage.engine import make_engine, make_session_factory, session_scope
from storage.models.registry import Unit


def _units(settings: Settings) -> list[str]:
    engine = make_engine(settings.resolved_database_url)
    try:
        with session_scope(make_session_factory(engine)) as s:
            return sorted(u.code for u in s.scalars(select(Unit)))
    finally:
        engine.dispose()


def test_a_mounted_recordings_volume_is_refused_before_the_database_changes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mocker: MockerFixture
) -> None:
    monkeypatch.delenv("LINKCALL_DATABASE_URL", raising=False)
    monkeypatch.setenv("LINKCALL_DATA_DIR", str(tmp_path / "data"))
    settings = Settings()
    settings.data_dir.mkdir(parents=True)
    migrate.upgrade(settings.resolved_database_url)
    (settings.recordings_dir / "2026").mkdir(parents=True)
    (settings.recordings_dir / "2026" / "old.wav").write_bytes(b"RIFF")
    report = backup_mod.backup(settings, tmp_path / "backup")
    assert report.files == 3  # the recording, the database, the backup's own info

    engine = make_engine(settings.resolved_database_url)  # a change made after the backup
    with session_scope(make_session_factory(engine)) as s:
        s.add(Unit(code="L09", name="县水利局", kind="linkage"))
    engine.dispose()

    root = settings.recordings_dir
    mocker.patch.object(backup_mod, "_is_mount", side_effect=lambda p: Path(p) == root)
    with pytest.raises(backup_mod.BackupError, match=r"mount point.*nothing was changed"):
        backup_mod.restore(settings, tmp_path / "backup", force=True)
    assert _units(settings) == ["L09"]  # the database was not restored
    assert (root / "2026" / "old.wav").read_bytes() == b"RIFF"

    mocker.patch.object(backup_mod, "_is_mount", return_value=False)
    done = backup_mod.restore(settings, tmp_path / "backup", force=True)
    assert done.problems == [] and done.moved_aside is not None
    assert _units(settings) == []  # restored to the backup's state


def _actions(url: str) -> list[str]:
    from storage.models.auth import AuditEntry

    engine = make_engine(url)
    try:
        with session_scope(make_session_factory(engine)) as s:
            return [e.action for e in s.scalars(select(AuditEntry).order_by(AuditEntry.id))]
    finally:
        engine.dispose()


def test_a_backup_is_audited_and_a_restore_keeps_the_database_it_replaces(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A backup takes every recording out of the service: it is audited (`recording.backup`,
    in the copy too). A restore replaced the database with the backup's, dropping what was
    recorded since (rows, hashes, legal holds, the audit log) for good: a copy of it is now
    kept beside the data, and the restored audit log says a restore happened."""
    monkeypatch.delenv("LINKCALL_DATABASE_URL", raising=False)
    monkeypatch.setenv("LINKCALL_DATA_DIR", str(tmp_path / "data"))
    settings = Settings()
    settings.data_dir.mkdir(parents=True)
    url = settings.resolved_database_url
    migrate.upgrade(url)
    report = backup_mod.backup(settings, tmp_path / "backup")
    assert _actions(url) == ["recording.backup"]
    assert _actions(f"sqlite:///{tmp_path / 'backup' / report.database_file}") == [
        "recording.backup"
    ]

    engine = make_engine(url)  # made after the backup: what a restore would drop
    with session_scope(make_session_factory(engine)) as s:
        s.add(Unit(code="L09", name="县水利局", kind="linkage"))
    engine.dispose()

    done = backup_mod.restore(settings, tmp_path / "backup", force=True)
    assert done.problems == []
    assert _units(settings) == []
    kept = done.database_moved_aside
    assert kept is not None and kept.parent.parent == settings.data_dir
    assert kept.parent.name.startswith("database.before-restore-")
    before = Settings(database_url=f"sqlite:///{kept}")
    assert _units(before) == ["L09"]
    assert _actions(url) == ["recording.backup", "backup.restore"]


def test_two_restores_within_a_second_keep_both_sets_aside(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mocker: MockerFixture
) -> None:
    """What a restore moves aside is named by the second: a second restore in the same second
    wrote its database copy over the first one's."""
    from datetime import datetime

    monkeypatch.delenv("LINKCALL_DATABASE_URL", raising=False)
    monkeypatch.setenv("LINKCALL_DATA_DIR", str(tmp_path / "data"))
    settings = Settings()
    settings.data_dir.mkdir(parents=True)
    migrate.upgrade(settings.resolved_database_url)
    backup_mod.backup(settings, tmp_path / "backup")
    frozen = datetime(2026, 12, 6, 20, 0, 0)
    mocker.patch.object(backup_mod, "datetime", **{"now.return_value": frozen})
    kept = []
    for code in ("L08", "L09"):
        engine = make_engine(settings.resolved_database_url)
        with session_scope(make_session_factory(engine)) as s:
            s.add(Unit(code=code, name="县水利局", kind="linkage"))
        engine.dispose()
        (settings.recordings_dir / code).mkdir(parents=True)
        (settings.recordings_dir / code / "x.wav").write_bytes(b"RIFF")
        done = backup_mod.restore(settings, tmp_path / "backup", force=True)
        assert done.database_moved_aside is not None and done.moved_aside is not None
        kept.append((done.database_moved_aside, done.moved_aside))
    assert kept[0][0] != kept[1][0] and kept[0][1] != kept[1][1]
    for (db, recs), code in zip(kept, ("L08", "L09"), strict=True):
        assert _units(Settings(database_url=f"sqlite:///{db}")) == [code]
        assert (recs / code / "x.wav").read_bytes() == b"RIFF"
