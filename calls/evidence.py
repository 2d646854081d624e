"""Evidence kept right: the daily hash verification, the retention purge under legal hold, and
holding or releasing a recording. Plain functions over a session factory and the recordings
root; the scheduler (api/scheduler.py) runs the daily ones in a worker thread.

A purged recording keeps its row (state `purged`, `purged_at`, its hashes) so the record of
what existed and when it was deleted outlives the audio; every hold, release and purge is an
audit entry.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import stat
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from recordings import Finding, Problem, check, read_manifest
from recordings.info import SUMS_FILE
from storage import audit
from storage.base import utcnow
from storage.engine import session_scope
from storage.errors import NotFound
from storage.models.call_records import Recording, RecordingState
from storage.tokens import Principal

log = logging.getLogger(__name__)

CHECKED_STATES = (RecordingState.FINALISED, RecordingState.INTERRUPTED, RecordingState.FAILED)


@dataclass
class VerifyResult:
    """One verification run: how many were checked, which had problems, by kind."""

    checked: int = 0
    bad: list[tuple[str, str, str]] = field(default_factory=list)  # (recording, call, text)
    problems: Counter[str] = field(default_factory=Counter)  # new problems, by kind
    finished_at: datetime | None = None


def health_of(rec: Recording, root: Path) -> tuple[bool, list[Finding]]:
    """Re-hash one recording's files; its manifest must also agree with the database, and its
    SHA256SUMS (the seal: `sha256sum -c` checks the set with it) with the sealed hash the
    database keeps."""
    expected = None
    call = rec.call
    if call.connected_at is not None and call.ended_at is not None:
        expected = (call.ended_at - call.connected_at).total_seconds()
    directory = root / rec.directory
    report = check(directory, expected)
    findings = list(report.findings)
    if directory.is_dir() and not any(f.problem is Problem.MISSING_MANIFEST for f in findings):
        try:
            manifest = read_manifest(directory)
        except (OSError, ValueError, KeyError):
            manifest = None
        for role, stored in (rec.tracks or {}).items():
            on_disk = manifest.tracks.get(role) if manifest else None
            if on_disk is not None and on_disk.sha256 != stored.get("sha256"):
                detail = (
                    f"{role}: manifest sha256 {on_disk.sha256} != database {stored.get('sha256')}"
                )
                findings.append(Finding(Problem.HASH_MISMATCH, role, detail))
        findings += _seal_findings(rec, directory)
    return not findings, findings


def _seal_findings(rec: Recording, directory: Path) -> list[Finding]:
    """The sealed SHA256SUMS against the hash stored when the recording was sealed."""
    if not rec.sha256:
        return []
    sums = directory / SUMS_FILE
    try:
        digest = hashlib.sha256(sums.read_bytes()).hexdigest()
    except FileNotFoundError:
        return [Finding(Problem.MISSING_FILE, None, f"{SUMS_FILE} is missing")]
    except OSError as exc:
        return [Finding(Problem.UNREADABLE, None, f"{SUMS_FILE}: {exc}")]
    if digest != rec.sha256:
        detail = f"{SUMS_FILE} sha256 {digest} != sealed {rec.sha256}"
        return [Finding(Problem.HASH_MISMATCH, None, detail)]
    return []


def verify_recordings(
    factory: sessionmaker[Session],
    root: Path,
    *,
    limit: int | None = None,
    now: datetime | None = None,
) -> VerifyResult:
    """Re-hash every finalised recording (newest first), store the result as its `health`
    and audit the run. A problem a recording did not have before counts once in `problems`."""
    result = VerifyResult()
    at = now or utcnow()
    root = root.resolve()
    with session_scope(factory) as session:
        stmt = (
            select(Recording)
            .where(Recording.state.in_(CHECKED_STATES))
            .order_by(Recording.started_at.desc())
        )
        if limit is not None:
            stmt = stmt.limit(limit)
        for rec in session.scalars(stmt):
            ok, findings = health_of(rec, root)
            before = {
                (f.get("problem"), f.get("track")) for f in (rec.health or {}).get("findings", [])
            }
            for f in findings:
                if (f.problem.value, f.track) not in before:
                    result.problems[f.problem.value] += 1
            rec.health = {
                "ok": ok,
                "checked_at": at.isoformat(),
                "findings": [
                    {"problem": f.problem.value, "track": f.track, "detail": f.detail}
                    for f in findings
                ],
            }
            rec.verified_at = at
            result.checked += 1
            if not ok:
                text = "; ".join(f"{f.problem.value} {f.track or ''} {f.detail}" for f in findings)
                result.bad.append((rec.id, rec.call_id, text))
        audit.record(
            session,
            None,
            "recording.verify",
            "recording",
            "*",
            detail={"checked": result.checked, "bad": [b[0] for b in result.bad]},
        )
    result.finished_at = at
    if result.bad:
        log.error("recording verification: %d of %d with problems", len(result.bad), result.checked)
    else:
        log.info("recording verification: %d recording(s) intact", result.checked)
    return result


@dataclass
class PurgeResult:
    purged: list[str] = field(default_factory=list)
    held: list[str] = field(default_factory=list)  # past retention, kept for a legal hold
    failed: list[tuple[str, str]] = field(default_factory=list)


def _remove_tree(directory: Path) -> None:
    """Delete a sealed recording directory (its files are read-only)."""
    if not directory.exists():
        return
    for path in directory.rglob("*"):
        if path.is_file():
            path.chmod(stat.S_IRUSR | stat.S_IWUSR)
    directory.chmod(stat.S_IRWXU)
    shutil.rmtree(directory)


def purge_expired(
    factory: sessionmaker[Session],
    root: Path,
    retention_days: int,
    *,
    now: datetime | None = None,
) -> PurgeResult:
    """Delete the files of recordings older than `retention_days` (by start) that are not
    under legal hold and not still recording; each purge is audited, the row kept. With
    `retention_days` 0 nothing is ever purged.

    One recording at a time, the audit first: its row is re-read under a row lock (a hold set
    since the candidates were listed is seen; one set meanwhile waits and then finds it
    purged), marked `purged` and audited in one committed transaction, and only then are its
    files deleted. A crash in between leaves files of a recording marked purged, never files
    gone without a record. A deletion that fails puts the row back as it was and is audited
    as `recording.purge_failed` with the files left (part of the evidence may be gone: the
    daily verification that follows flags it)."""
    result = PurgeResult()
    if retention_days <= 0:
        return result
    at = now or utcnow()
    cutoff = at - timedelta(days=retention_days)
    root = root.resolve()
    with session_scope(factory) as session:
        candidates = list(
            session.scalars(
                select(Recording.id)
                .where(Recording.started_at < cutoff, Recording.state.in_(CHECKED_STATES))
                .order_by(Recording.started_at)
            )
        )
    for rec_id in candidates:
        _purge_one(factory, root, rec_id, retention_days, at, result)
    if result.purged or result.held or result.failed:
        log.info(
            "retention: %d recording(s) purged, %d kept under legal hold, %d failed",
            len(result.purged),
            len(result.held),
            len(result.failed),
        )
    return result


def _purge_one(
    factory: sessionmaker[Session],
    root: Path,
    rec_id: str,
    retention_days: int,
    at: datetime,
    result: PurgeResult,
) -> None:
    with session_scope(factory) as session:
        rec = session.scalars(
            select(Recording).where(Recording.id == rec_id).with_for_update()
        ).one_or_none()
        if rec is None or rec.state not in CHECKED_STATES:
            return
        if rec.legal_hold:
            result.held.append(rec.id)
            return
        directory = (root / rec.directory).resolve()
        if root not in directory.parents:
            result.failed.append((rec.id, f"directory {rec.directory!r} outside the root"))
            log.error("recording %s: not purged, directory %r outside the root", rec.id,
                      rec.directory)  # fmt: skip
            return
        previous = rec.state
        rec.state = RecordingState.PURGED
        rec.purged_at = at
        # SQLite has no row lock (FOR UPDATE is a no-op there): a hold may have been committed
        # since the read. Written first, it is read again under the write lock now held.
        session.flush()
        session.refresh(rec, ["legal_hold"])
        if rec.legal_hold:
            session.rollback()
            result.held.append(rec_id)
            return
        audit.record(
            session,
            None,
            "recording.purge",
            "recording",
            rec.id,
            detail={
                "retention_days": retention_days,
                "started_at": rec.started_at.isoformat(),
                "sha256": rec.sha256,
            },
        )
    try:  # committed above: the deletion is on record before a file goes
        _remove_tree(directory)
    except OSError as exc:
        try:
            left = sorted(p.name for p in directory.iterdir()) if directory.is_dir() else []
        except OSError as listing:  # the failure must be put on record all the same
            left = [f"(not listed: {listing})"]
        log.error("recording %s: purge failed (%d file(s) left): %s", rec_id, len(left), exc)
        result.failed.append((rec_id, str(exc)))
        with session_scope(factory) as session:
            back = session.get(Recording, rec_id)
            if back is not None:
                back.state, back.purged_at = previous, None
            audit.record(
                session,
                None,
                "recording.purge_failed",
                "recording",
                rec_id,
                detail={"error": str(exc), "files_left": left},
            )
        return
    result.purged.append(rec_id)


def set_hold(
    session: Session,
    recording_id: str,
    principal: Principal,
    *,
    hold: bool,
    reason: str | None,
    client: str | None,
) -> Recording:
    """Put a recording under legal hold (or release it), audited. A purged recording cannot
    be held (its audio is gone): ValueError."""
    # under the row's lock, as the purge reads it (purge_expired): a hold that read the row
    # before a purge marked it would otherwise be stored over the purged row
    rec = session.get(Recording, recording_id, with_for_update=True)
    if rec is None:
        raise NotFound("recording", recording_id)
    if hold and rec.state is RecordingState.PURGED:
        raise ValueError(f"recording {recording_id} was purged on {rec.purged_at}: nothing to hold")
    detail: dict[str, Any] = {"reason": reason, "was_held": rec.legal_hold}
    rec.legal_hold = hold
    if hold:
        rec.hold_reason, rec.held_by, rec.held_at = reason, principal.name, utcnow()
        # SQLite: no row lock, so a purge may have been committed since the read; written
        # first, the state is read again under the write lock now held (PostgreSQL: the lock)
        session.flush()
        session.refresh(rec, ["state", "purged_at"])
        if rec.state is RecordingState.PURGED:
            raise ValueError(
                f"recording {recording_id} was purged on {rec.purged_at}: nothing to hold"
            )
    action = "recording.hold" if hold else "recording.release"
    audit.record(session, principal, action, "recording", rec.id, detail=detail, client=client)
    return rec
