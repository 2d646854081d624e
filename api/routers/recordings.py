"""Recordings: metadata and audio, every access audited (issue 5)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import FileResponse
from pydantic import BaseModel

from api import audit_ctx
from api.auth import DispatcherDep
from api.deps import ServiceDep, SessionDep
from api.problems import Problem
from recordings import ArchiveError, FilesystemArchive
from storage.errors import NotFound
from storage.models.call_records import Recording

router = APIRouter(prefix="/api/v1/recordings", tags=["recordings"])


class RecordingOut(BaseModel):
    id: str
    call_id: str
    state: str
    sha256: str | None
    size_bytes: int | None
    duration_s: float | None
    tracks: dict[str, Any]
    started_at: datetime
    finalised_at: datetime | None
    error: str | None
    health: dict[str, Any]


def _recording(session: SessionDep, recording_id: str) -> Recording:
    rec = session.get(Recording, recording_id)
    if rec is None:
        raise NotFound("recording", recording_id)
    return rec


@router.get("/{recording_id}", response_model=RecordingOut, summary="A recording's metadata")
def get_recording(
    recording_id: str, request: Request, session: SessionDep, principal: DispatcherDep
) -> RecordingOut:
    rec = _recording(session, recording_id)
    audit_ctx.record(session, request, principal, "recording.metadata", "recording", rec.id)
    return RecordingOut(
        id=rec.id,
        call_id=rec.call_id,
        state=rec.state.value,
        sha256=rec.sha256,
        size_bytes=rec.size_bytes,
        duration_s=rec.duration_s,
        tracks=rec.tracks,
        started_at=rec.started_at,
        finalised_at=rec.finalised_at,
        error=rec.error,
        health=rec.health,
    )


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
    track: Annotated[str, Query(pattern="^(mixed|caller|dispatcher|unit|callee|seat)$")] = "mixed",
) -> FileResponse:
    rec = _recording(session, recording_id)
    info = rec.tracks.get(track)
    if info is None:
        raise Problem(
            404,
            "No such track",
            f"recording {recording_id} has no {track!r} track "
            f"(state {rec.state.value}; tracks: {', '.join(rec.tracks) or 'none yet'})",
            kind="not-found",
        )
    archive = FilesystemArchive(service.settings.recordings_dir)
    try:
        path = archive.resolve(info["file"])
    except ArchiveError as exc:
        raise Problem(404, "Recording file missing", str(exc), kind="not-found") from exc
    if not path.is_file():
        raise Problem(
            404, "Recording file missing", f"{info['file']} is not on disk", kind="not-found"
        )
    audit_ctx.record(
        session,
        request,
        principal,
        "recording.audio",
        "recording",
        rec.id,
        {"track": track, "range": request.headers.get("range")},
    )
    session.commit()  # the audit entry is written before a byte is sent
    return FileResponse(path, media_type="audio/wav", filename=f"{rec.call_id}-{track}.wav")
