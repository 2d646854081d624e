"""`linkcall backup DIR` and `linkcall restore DIR`: the database and the recordings together.

A backup directory holds:

    backup.json          when, from which node, the database backend and schema revision
    database.sqlite3     SQLite: a consistent copy by the online backup API, or
    database.pgdump      PostgreSQL: pg_dump custom format (one snapshot)
    recordings/...       every recording file, same layout as the data directory
    SHA256SUMS           sha256sum format, every file above (`sha256sum -c SHA256SUMS`)

The database is copied first, then the recordings, so every recording the copied database
knows as sealed is in the copy; a recording still being written is copied as it stands and is
sealed by crash recovery when a restored service starts.

Restore (service stopped) checks the backup's SHA256SUMS before it touches anything, brings
the database back, moves any recordings already present aside (never deleting evidence),
copies the recordings back, and verifies every file against the list, every sealed recording
against its own manifest, and every recording row's track hashes against the files.
"""

from __future__ import annotations

import json
import os
import socket
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select

from api.settings import Settings
from recordings.backup import (
    copy_tree,
    read_sums,
    sha256_file,
    verify_sealed,
    verify_sums,
    write_sums,
)
from storage import audit, migrate
from storage.backup import BackupError, backend, dump_database, restore_database, sqlite_path
from storage.base import utcnow
from storage.engine import make_engine, make_session_factory, session_scope
from storage.models.call_records import Recording, RecordingState

INFO_FILE = "backup.json"
SUMS_FILE = "SHA256SUMS"
RECORDINGS = "recordings"


@dataclass
class BackupReport:
    directory: Path
    database_file: str
    files: int
    bytes: int
    schema_revision: str | None
    seconds: float


@dataclass
class RestoreReport:
    files: int
    recordings_checked: int
    moved_aside: Path | None
    schema_revision: str | None
    problems: list[str] = field(default_factory=list)
    database_moved_aside: Path | None = None  # a copy of the database the restore replaced


def backup(settings: Settings, dest: Path) -> BackupReport:
    """Copy the database and the recordings into `dest` (new or empty) while the service runs."""
    started = time.monotonic()
    if dest.exists() and any(dest.iterdir()):
        raise BackupError(f"{dest} is not empty: back up into a new directory")
    try:
        return _backup(settings, dest, started)
    except OSError as exc:  # no room, no permission, not a directory: say so, not a traceback
        raise BackupError(
            f"backup failed, {dest} is incomplete (delete it before trying again): {exc}"
        ) from exc


def _backup(settings: Settings, dest: Path, started: float) -> BackupReport:
    dest.mkdir(parents=True, exist_ok=True)
    url = settings.resolved_database_url
    kind = backend(url)
    engine = make_engine(url)
    try:
        revision = migrate.current_revision(engine)
        if revision is not None:  # every recording leaves with the copy: audited, in the copy
            with session_scope(make_session_factory(engine)) as session:
                audit.record(session, None, "recording.backup", "recording", "*",
                             detail={"directory": str(dest.resolve())}, client="cli")  # fmt: skip
    finally:
        engine.dispose()
    db_file = dump_database(url, dest)
    sums = [
        (d, f"{RECORDINGS}/{rel}")
        for d, rel in copy_tree(settings.recordings_dir, dest / RECORDINGS)
    ]
    info = {
        "created_at": utcnow().isoformat(),
        "node": settings.node,
        "backend": kind,
        "schema_revision": revision,
        "database_file": db_file.name,
        "recording_files": len(sums),
    }
    (dest / INFO_FILE).write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    sums += [(sha256_file(db_file), db_file.name), (sha256_file(dest / INFO_FILE), INFO_FILE)]
    write_sums(dest / SUMS_FILE, sums)
    size = sum((dest / rel).stat().st_size for _, rel in sums)
    return BackupReport(dest, db_file.name, len(sums), size, revision, time.monotonic() - started)


def _service_running(settings: Settings) -> bool:
    """The service binds its SIP address: if we can bind it, the service is not running here."""
    host, port = settings.sip_listen_addr
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.bind((host, port))
        except OSError:
            return True
    return False


def _is_mount(path: Path) -> bool:
    return os.path.ismount(path)


def _check_recordings_target(root: Path) -> None:
    """The recordings already there are moved aside (renamed) before the backup's are copied:
    refuse at once, with nothing changed, when that cannot work — a mount point (a volume)
    cannot be renamed, nor a directory in a parent we cannot write."""
    if not root.exists() or not any(root.iterdir()):
        return
    if _is_mount(root):
        raise BackupError(
            f"{root} is a mount point and not empty: it cannot be moved aside. Restore onto an "
            "empty recordings volume (or empty this one after saving its files); nothing was "
            "changed"
        )
    if not os.access(root.parent, os.W_OK):
        raise BackupError(
            f"cannot move {root} aside ({root.parent} is not writable); nothing was changed"
        )


def restore(settings: Settings, src: Path, *, force: bool = False) -> RestoreReport:
    """Bring a backup back into the configured database and data directory (service stopped)."""
    info_path, sums_path = src / INFO_FILE, src / SUMS_FILE
    if not info_path.is_file() or not sums_path.is_file():
        raise BackupError(f"{src} is not a linkcall backup (no {INFO_FILE} or {SUMS_FILE})")
    if not force and _service_running(settings):
        raise BackupError(
            f"something listens on {settings.sip_listen}: stop the service before restoring "
            "(or pass --force if that is not linkcall)"
        )
    sums = read_sums(sums_path)
    problems = verify_sums(src, sums)
    if problems:
        raise BackupError("the backup is damaged, nothing was changed: " + "; ".join(problems[:20]))
    info: dict[str, Any] = json.loads(info_path.read_text(encoding="utf-8"))
    url = settings.resolved_database_url
    if backend(url) != info["backend"]:
        raise BackupError(
            f"the backup holds a {info['backend']} database; "
            f"LINKCALL_DATABASE_URL is {backend(url)}"
        )
    root = settings.recordings_dir
    _check_recordings_target(root)  # before anything changes: all or nothing
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    stamp = _aside_stamp(settings.data_dir, root)
    # The database being replaced holds what the backup does not: recordings made since (their
    # hashes, holds) and the audit log. A copy of it is kept beside the data, never dropped.
    db_aside = _keep_database(url, settings.data_dir / f"database.{stamp}")
    restore_database(url, src / info["database_file"])

    moved: Path | None = None
    if root.exists() and any(root.iterdir()):
        moved = root.with_name(f"{root.name}.{stamp}")
        root.rename(moved)
    copy_tree(src / RECORDINGS, root)
    prefix = f"{RECORDINGS}/"
    rec_sums = [(d, rel[len(prefix) :]) for d, rel in sums if rel.startswith(prefix)]
    problems = verify_sums(root, rec_sums) + verify_sealed(root)

    engine = make_engine(url)
    checked = 0
    try:
        revision = migrate.current_revision(engine)
        with session_scope(make_session_factory(engine)) as session:
            for rec in session.scalars(
                select(Recording).where(
                    Recording.state.in_(
                        (
                            RecordingState.FINALISED,
                            RecordingState.INTERRUPTED,
                            RecordingState.FAILED,
                        )
                    )
                )
            ):
                checked += 1
                for role, track in (rec.tracks or {}).items():
                    path = root / str(track.get("file", ""))
                    if not path.is_file():
                        problems.append(f"recording {rec.id} {role}: {track.get('file')} missing")
                    elif sha256_file(path) != track.get("sha256"):
                        problems.append(
                            f"recording {rec.id} {role}: sha256 differs from the database"
                        )
            audit.record(  # the restored audit log says it was restored, and what was kept
                session,
                None,
                "backup.restore",
                "backup",
                str(info.get("created_at", "")),
                detail={
                    "source": str(src.resolve()),
                    "backup_created_at": info.get("created_at"),
                    "database_moved_aside": str(db_aside) if db_aside else None,
                    "recordings_moved_aside": str(moved) if moved else None,
                    "problems": len(problems),
                },
                client="cli",
            )
    finally:
        engine.dispose()
    return RestoreReport(len(rec_sums), checked, moved, revision, problems, db_aside)


def _aside_stamp(data_dir: Path, root: Path) -> str:
    """`before-restore-TIMESTAMP` naming neither a kept database nor moved recordings that
    exist already (two restores within a second must not overwrite what the first kept)."""
    base = f"before-restore-{datetime.now():%Y%m%dT%H%M%S}"
    stamp, n = base, 1
    while (data_dir / f"database.{stamp}").exists() or root.with_name(
        f"{root.name}.{stamp}"
    ).exists():
        n += 1
        stamp = f"{base}-{n}"
    return stamp


def _keep_database(url: str, dest: Path) -> Path | None:
    """A consistent copy of the database a restore is about to replace, in `dest` (None: no
    database there yet — no SQLite file, no schema — nothing to keep)."""
    if backend(url) == "sqlite" and not sqlite_path(url).is_file():
        return None
    engine = make_engine(url)
    try:
        if migrate.current_revision(engine) is None:
            return None
    finally:
        engine.dispose()
    try:
        return dump_database(url, dest)
    except OSError as exc:
        raise BackupError(
            f"cannot keep a copy of the database being replaced in {dest}; nothing was "
            f"changed: {exc}"
        ) from exc
