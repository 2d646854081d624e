"""A call's recording rows: the row written when a recording starts (so a crash cannot hide
it), the sealed recording's figures and health stored when it is finished, and the figures of a
recording sealed without the service (after a crash)."""

from __future__ import annotations

import logging
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.orm import Session, sessionmaker

from calls.record_rows import CallRows, insert_recording, recording_of, update_recording
from recordings import RecordingInfo, check, read_manifest
from recordings.errors import RecordingError
from recordings.info import MANIFEST_FILE
from storage.base import utcnow
from storage.engine import session_scope
from storage.models.call_records import Recording, RecordingState

log = logging.getLogger(__name__)


def recording_started(
    factory: sessionmaker[Session], call_id: str, recording_id: str, directory: str
) -> None:
    """A recording began: its row exists from the first second, so a crash cannot hide it."""
    with session_scope(factory) as s:
        insert_recording(s.connection(), call_id, recording_id, directory)


def _track_json(info: RecordingInfo, root: Path) -> dict[str, Any]:
    return {
        role: {
            "file": str(t.path.relative_to(root)),
            "sha256": t.sha256,
            "size_bytes": t.size_bytes,
            "duration_s": round(t.duration_s, 3),
            "rms_dbfs": None if t.rms <= 0 else round(t.rms_dbfs, 1),
        }
        for role, t in info.tracks.items()
    }


def recording_finished(
    factory: sessionmaker[Session],
    recording_id: str,
    root: Path,
    info: RecordingInfo | None,
    error: str | None,
) -> None:
    """Store the sealed recording (hashes, sizes, duration) and its health."""
    with session_scope(factory) as s:
        write_recording_finished(s.connection(), CallRows(), recording_id, root, info, error)


def write_recording_finished(
    conn: Connection,
    rows: CallRows,
    recording_id: str,
    root: Path,
    info: RecordingInfo | None,
    error: str | None,
) -> None:
    """`recording_finished` on the writer's connection and cache."""
    rows.flush(conn)  # the call's end may be staged
    found = recording_of(conn, recording_id)
    if found is None:
        log.error("finished recording %s has no row", recording_id)
        return
    values: dict[str, Any] = {"finalised_at": utcnow(), "error": error}
    if info is None:
        values["state"] = RecordingState.FAILED
    else:
        values |= info_columns(info, root, error)
        start = found.connected_at if found.segment == 1 else found.resumed_at
        expected = None
        if start is not None and found.ended_at is not None:
            expected = (found.ended_at - start).total_seconds()
        report = check(info, expected)
        values["health"] = {
            "ok": report.ok,
            "findings": [
                {"problem": f.problem.value, "track": f.track, "detail": f.detail}
                for f in report.findings
            ],
        }
    update_recording(conn, recording_id, values)


def info_columns(info: RecordingInfo, root: Path, error: str | None) -> dict[str, Any]:
    """A sealed recording's figures, as its row's columns (`error` is the row's error so far)."""
    if info.lost_s:
        error = (error or "") + f" lost {info.lost_s:.1f} s of audio"
    return {
        "state": RecordingState.INTERRUPTED if info.interrupted else RecordingState.FINALISED,
        "sha256": info.manifest_sha256,
        "size_bytes": sum(t.size_bytes for t in info.tracks.values()),
        "duration_s": round(info.duration_s, 3),
        "tracks": _track_json(info, root),
        "error": error,
    }


def apply_info(rec: Recording, info: RecordingInfo, root: Path) -> None:
    """Copy a sealed recording's figures into its row."""
    for column, value in info_columns(info, root, rec.error).items():
        setattr(rec, column, value)


def sealed_after_crash(rec: Recording, root: Path, now: datetime) -> RecordingInfo | None:
    """A segment still `recording` in the database whose files were sealed without the service
    (a media worker seals what it holds when the service dies, calls/media_workers): read its
    manifest, store its figures, mark it interrupted. None when there is no manifest."""
    if rec.state is not RecordingState.RECORDING:
        return None
    directory = root / rec.directory
    if not (directory / MANIFEST_FILE).is_file():
        return None
    try:
        info = read_manifest(directory)
    except (OSError, ValueError, RecordingError) as exc:
        log.error("recording %s: sealed but its manifest is unreadable: %s", rec.id, exc)
        return None
    apply_info(rec, info, root)
    rec.state, rec.finalised_at = RecordingState.INTERRUPTED, now
    return info
