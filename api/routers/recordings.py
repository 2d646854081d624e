"""Recordings: a list, metadata, audio and the evidence package, every access audited (issues
5 and 15)."""

from __future__ import annotations

import os
import tempfile
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import FileResponse, Response
from pydantic import BaseModel, Field
from sqlalchemy import select
from starlette.background import BackgroundTask
from starlette.responses import MalformedRangeHeader, RangeNotSatisfiable

from api import audit_ctx, forwarding
from api.auth import DispatcherDep, SupervisorDep
from api.deps import ServiceDep, SessionDep
from api.problems import Problem
from calls.evidence import set_hold
from recordings import ArchiveError, FilesystemArchive
from recordings.package import PackageError, PackageTrack, write_package
from storage import audit
from storage.base import utcnow
from storage.errors import NotFound
from storage.models.call_records import Call, Recording, RecordingState
from storage.tokens import Principal

TRACK_PATTERN = "^(mixed|caller|dispatcher|unit|unit2|unit3|callee|seat)$"
"""A recording's tracks: the mix and one per role (a bridge's added units: unit2, unit3)."""

router = APIRouter(prefix="/api/v1/recordings", tags=["recordings"])


class RecordingOut(BaseModel):
    id: str
    call_id: str
    segment: int = 1  # 2, 3...: recorded after the call survived a crash (docs/recordings.md)
    state: str
    sha256: str | None
    size_bytes: int | None
    duration_s: float | None
    tracks: dict[str, Any]
    started_at: datetime
    finalised_at: datetime | None
    error: str | None
    health: dict[str, Any]
    legal_hold: bool = False
    hold_reason: str | None = None
    held_by: str | None = None
    held_at: datetime | None = None
    purged_at: datetime | None = None
    verified_at: datetime | None = None


class HoldIn(BaseModel):
    reason: str = Field(min_length=1, max_length=2000, description="why the recording is held")


class ReleaseIn(BaseModel):
    reason: str | None = Field(default=None, max_length=2000)


def _recording(session: SessionDep, recording_id: str) -> Recording:
    rec = session.get(Recording, recording_id)
    if rec is None:
        raise NotFound("recording", recording_id)
    return rec


class RecordingRow(BaseModel):
    """A recording in the browser's list, with its call."""

    id: str
    call_id: str
    segment: int = 1
    state: str
    duration_s: float | None
    tracks: list[str]
    started_at: datetime
    finalised_at: datetime | None
    health_ok: bool | None
    call_kind: str
    unit_code: str | None
    incident_id: str | None
    legal_hold: bool = False
    hold_reason: str | None = None


@router.get("", response_model=list[RecordingRow], summary="Recordings, newest first")
def list_recordings(
    request: Request,
    session: SessionDep,
    principal: SupervisorDep,
    state: RecordingState | None = None,
    unit_code: Annotated[str | None, Query(max_length=40)] = None,
    incident_id: Annotated[str | None, Query(max_length=32)] = None,
    from_: Annotated[datetime | None, Query(alias="from")] = None,
    to: datetime | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[RecordingRow]:
    stmt = (
        select(Recording, Call)
        .join(Call, Call.id == Recording.call_id)
        .order_by(Recording.started_at.desc(), Recording.id)
        .limit(limit)
    )
    if state is not None:
        stmt = stmt.where(Recording.state == state)
    if unit_code:
        stmt = stmt.where(Call.unit_code == unit_code)
    if incident_id:
        stmt = stmt.where(Call.incident_id == incident_id)
    if from_ is not None:
        stmt = stmt.where(Recording.started_at >= from_)
    if to is not None:
        stmt = stmt.where(Recording.started_at < to)
    rows = [
        RecordingRow(
            id=rec.id,
            call_id=rec.call_id,
            segment=rec.segment,
            state=rec.state.value,
            duration_s=rec.duration_s,
            tracks=sorted(rec.tracks),
            started_at=rec.started_at,
            finalised_at=rec.finalised_at,
            health_ok=rec.health.get("ok") if rec.health else None,
            call_kind=call.kind.value,
            unit_code=call.unit_code,
            incident_id=call.incident_id,
            legal_hold=rec.legal_hold,
            hold_reason=rec.hold_reason,
        )
        for rec, call in session.execute(stmt)
    ]
    audit_ctx.record(session, request, principal, "recording.list", "recording", "*",
                     {"count": len(rows)})  # fmt: skip
    return rows


@router.get("/{recording_id}", response_model=RecordingOut, summary="A recording's metadata")
def get_recording(
    recording_id: str, request: Request, session: SessionDep, principal: DispatcherDep
) -> RecordingOut:
    rec = _recording(session, recording_id)
    audit_ctx.record(session, request, principal, "recording.metadata", "recording", rec.id)
    return _out(rec)


def _out(rec: Recording) -> RecordingOut:
    return RecordingOut(
        id=rec.id,
        call_id=rec.call_id,
        segment=rec.segment,
        state=rec.state.value,
        sha256=rec.sha256,
        size_bytes=rec.size_bytes,
        duration_s=rec.duration_s,
        tracks=rec.tracks,
        started_at=rec.started_at,
        finalised_at=rec.finalised_at,
        error=rec.error,
        health=rec.health,
        legal_hold=rec.legal_hold,
        hold_reason=rec.hold_reason,
        held_by=rec.held_by,
        held_at=rec.held_at,
        purged_at=rec.purged_at,
        verified_at=rec.verified_at,
    )


def _hold(
    session: SessionDep,
    request: Request,
    principal: SupervisorDep,
    recording_id: str,
    *,
    hold: bool,
    reason: str | None,
) -> RecordingOut:
    client = request.client.host if request.client else None
    try:
        rec = set_hold(session, recording_id, principal, hold=hold, reason=reason, client=client)
    except ValueError as exc:
        raise Problem(409, "Recording purged", str(exc), kind="conflict") from exc
    session.commit()
    return _out(rec)


@router.post(
    "/{recording_id}/hold",
    response_model=RecordingOut,
    summary="Put a recording under legal hold: the retention purge never deletes it (audited)",
)
def hold_recording(
    recording_id: str,
    body: HoldIn,
    request: Request,
    session: SessionDep,
    principal: SupervisorDep,
) -> RecordingOut:
    return _hold(session, request, principal, recording_id, hold=True, reason=body.reason)


@router.post(
    "/{recording_id}/release",
    response_model=RecordingOut,
    summary="Release a recording's legal hold: retention applies again (audited)",
)
def release_recording(
    recording_id: str,
    request: Request,
    session: SessionDep,
    principal: SupervisorDep,
    body: ReleaseIn | None = None,
) -> RecordingOut:
    reason = body.reason if body is not None else None
    return _hold(session, request, principal, recording_id, hold=False, reason=reason)


def _refuse(
    session: SessionDep,
    request: Request,
    principal: Principal,
    action: str,
    rec: Recording,
    detail: dict[str, Any],
    problem: Problem,
) -> Problem:
    """Audit a refused access to an existing recording (`recording.audio.refused`,
    `recording.package.refused`: who asked for what, the status and why; never counted as a
    download) and return the problem to raise. Committed here: the request's session is rolled
    back when the problem is raised. A track missing from the disk is found this way the moment
    someone asks for it, not only by the next daily verification."""
    audit_ctx.record(
        session,
        request,
        principal,
        action,
        "recording",
        rec.id,
        {**detail, "status": problem.status, "refused": problem.title, "reason": problem.detail},
    )
    session.commit()
    return problem


def _check_range(request: Request, path: Path) -> None:
    """A Range header FileResponse would refuse, refused here as a problem document: Starlette
    answers a malformed or unsatisfiable range itself, in plain text, past the exception
    handlers (and after the access had been audited). Same parser, same verdicts; with If-Range
    Starlette may ignore the range and send the whole track, so it is left to decide."""
    http_range = request.headers.get("range")
    if not http_range or request.headers.get("if-range"):
        return
    try:
        FileResponse._parse_range_header(http_range, path.stat().st_size)
    except MalformedRangeHeader as exc:
        raise Problem(400, "Malformed Range header", str(exc.content), kind="range") from exc
    except RangeNotSatisfiable as exc:
        raise Problem(
            416,
            "Range not satisfiable",
            f"the track has {exc.max_size} bytes",
            kind="range",
            headers={"Content-Range": f"bytes */{exc.max_size}"},
        ) from exc


@router.get(
    "/{recording_id}/audio",
    response_class=FileResponse,
    responses={200: {"content": {"audio/wav": {}}}, 206: {"content": {"audio/wav": {}}}},
    summary="One track as WAV (supports HTTP Range)",
)
def get_audio(
    recording_id: str,
    request: Request,
    session: SessionDep,
    service: ServiceDep,
    principal: DispatcherDep,
    track: Annotated[str, Query(pattern=TRACK_PATTERN)] = "mixed",
) -> Response:
    rec = _recording(session, recording_id)
    asked = {"track": track, "range": request.headers.get("range")}
    info = rec.tracks.get(track)
    if info is None:
        known = ", ".join(rec.tracks) or "none yet"
        raise _refuse(
            session,
            request,
            principal,
            "recording.audio.refused",
            rec,
            asked,
            Problem(
                404,
                "No such track",
                f"recording {recording_id} has no {track!r} track "
                f"(state {rec.state.value}; tracks: {known})",
                kind="not-found",
            ),
        )
    archive = FilesystemArchive(service.settings.recordings_dir)
    try:
        path = archive.resolve(info["file"])
        missing = None if path.is_file() else f"{info['file']} is not on disk"
    except ArchiveError as exc:
        missing = str(exc)
    if missing is not None:
        if (proxied := _from_owner(rec, request, session, service)) is not None:
            return proxied
        raise _refuse(
            session,
            request,
            principal,
            "recording.audio.refused",
            rec,
            asked,
            Problem(404, "Recording file missing", missing, kind="not-found"),
        )
    try:
        _check_range(request, path)
    except Problem as exc:
        raise _refuse(
            session, request, principal, "recording.audio.refused", rec, asked, exc
        ) from None
    audit_ctx.record(
        session,
        request,
        principal,
        "recording.audio",
        "recording",
        rec.id,
        asked,
    )
    session.commit()  # the audit entry is written before a byte is sent
    return FileResponse(path, media_type="audio/wav", filename=f"{rec.call_id}-{track}.wav")


def _on_disk(archive: FilesystemArchive, file: str) -> bool:
    try:
        return archive.resolve(file).is_file()
    except ArchiveError:
        return False


def _from_owner(
    rec: Recording, request: Request, session: SessionDep, service: ServiceDep
) -> Response | None:
    """A recording whose files are not on this node's disk and that another node made: stream
    it from that node while it lives (it checks the token and audits the access: the node that
    serves the bytes audits, once), 503 problem when it is down. None: answer here (this node
    made it, or the request was already forwarded). With shared storage (every node's
    LINKCALL_DATA_DIR recordings on one file system) the files are found here and nothing is
    proxied. Either way the SHA-256 seal in the database is what proves the bytes."""
    here, owner = service.settings.node, rec.call.node
    if owner == here or forwarding.was_forwarded(request):
        return None
    base = forwarding.owner_url(session, owner, f"recording {rec.id}")
    session.commit()  # end the read: the owner's answer may take a while
    return forwarding.proxy_get(request, base, here, owner)


def _call_manifest(call: Call) -> dict[str, Any]:
    return {
        "id": call.id, "kind": call.kind.value, "state": call.state.value,
        "unit_code": call.unit_code, "incident_id": call.incident_id,
        "created_by": call.created_by, "created_at": call.created_at,
        "connected_at": call.connected_at, "ended_at": call.ended_at,
        "end_reason": call.end_reason, "interrupted": call.interrupted,
        "parties": [{"role": leg.role, "number": leg.number} for leg in call.legs],
    }  # fmt: skip


@router.get(
    "/{recording_id}/package",
    response_class=FileResponse,
    responses={200: {"content": {"application/zip": {}}}},
    summary="Evidence package: a zip of the tracks, SHA256SUMS, a manifest and the access audit",
)
def get_package(
    recording_id: str,
    request: Request,
    session: SessionDep,
    service: ServiceDep,
    principal: SupervisorDep,
) -> Response:
    rec = _recording(session, recording_id)
    refused = "recording.package.refused"
    if rec.state not in (RecordingState.FINALISED, RecordingState.INTERRUPTED):
        raise _refuse(
            session,
            request,
            principal,
            refused,
            rec,
            {},
            Problem(
                409,
                "Recording not finished",
                f"recording {rec.id} is {rec.state.value}",
                kind="conflict",
            ),
        )
    archive = FilesystemArchive(service.settings.recordings_dir)
    gone = sorted(role for role, info in rec.tracks.items() if not _on_disk(archive, info["file"]))
    if gone:
        if (proxied := _from_owner(rec, request, session, service)) is not None:
            return proxied
        raise _refuse(
            session,
            request,
            principal,
            refused,
            rec,
            {},
            Problem(
                404,
                "Recording file missing",
                f"recording {rec.id}: track(s) {', '.join(gone)} not on disk",
                kind="not-found",
            ),
        )
    audit_ctx.record(session, request, principal, "recording.package", "recording", rec.id)
    session.commit()  # the download is in the log before a byte is sent, and in the package
    tracks = [
        PackageTrack(role, archive.resolve(info["file"]), info.get("sha256"))
        for role, info in sorted(rec.tracks.items())
    ]
    entries = [
        {
            "id": e.id,
            "at": e.at,
            "actor": e.actor,
            "role": e.role,
            "action": e.action,
            "detail": e.detail,
            "client": e.client,
        }
        for e in audit.entries_for(session, "recording", rec.id)
    ]
    manifest = {
        "format": "linkcall evidence package 1",
        "generated_at": utcnow(),
        "generated_by": {"name": principal.name, "role": principal.role.value},
        "recording": {
            "id": rec.id,
            "state": rec.state.value,
            "sealed_manifest_sha256": rec.sha256,
            "size_bytes": rec.size_bytes,
            "duration_s": rec.duration_s,
            "started_at": rec.started_at,
            "finalised_at": rec.finalised_at,
            "health": rec.health,
            "error": rec.error,
        },
        "call": _call_manifest(rec.call),
    }
    service.settings.data_dir.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix="package-", suffix=".zip", dir=service.settings.data_dir)
    try:
        with os.fdopen(fd, "wb") as out:
            write_package(out, recording_id=rec.id, tracks=tracks, manifest=manifest,
                          access_audit=entries)  # fmt: skip
    except PackageError as exc:
        os.unlink(name)
        raise _refuse(
            session,
            request,
            principal,
            refused,
            rec,
            {},
            Problem(409, "Recording damaged", str(exc), kind="conflict"),
        ) from exc
    except BaseException:
        os.unlink(name)
        raise
    return FileResponse(
        name,
        media_type="application/zip",
        filename=f"evidence-{rec.id}.zip",
        background=BackgroundTask(os.unlink, name),
    )
