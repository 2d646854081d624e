"""Every call the service carried, filterable and paged with a cursor (issues 5 and 15).

`number` finds a party's number: a full number matches its stored E.164 exactly, bare digits
match the last digits (`5678`). The number is never logged: the access log masks it
(api/logs.py).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel

from api.auth import DispatcherDep
from api.deps import OffsetQuery, ServiceDep, SessionDep
from api.problems import Problem
from registry.numbers import NumberError, number_search
from storage.call_history import BadCursor, CallFilter, search_calls
from storage.models.call_records import CallKind, CallState

router = APIRouter(prefix="/api/v1/calls", tags=["calls"])


class CallSummary(BaseModel):
    id: str
    kind: str
    state: str
    incident_id: str | None
    unit_code: str | None
    parties: dict[str, str | None]
    recording_id: str | None  # the first segment
    recordings: list[str] = []  # every segment (a call carried on after a crash has two)
    created_by: str
    created_at: datetime
    connected_at: datetime | None
    ended_at: datetime | None
    end_reason: str | None
    interrupted: bool
    # carried on after a crash: the end of the audio before it, and when the parties were back
    gap_started_at: datetime | None = None
    resumed_at: datetime | None = None


def _invalid(field: str, message: str) -> Problem:
    err = {"field": field, "message": message, "type": "value_error"}
    return Problem(422, "Invalid request", f"{field}: {message}", kind="validation", errors=[err])


@router.get(
    "",
    response_model=list[CallSummary],
    summary="Calls, newest first; the next page's cursor is in the X-Next-Cursor header",
)
def list_calls(
    response: Response,
    session: SessionDep,
    service: ServiceDep,
    _principal: DispatcherDep,
    kind: CallKind | None = None,
    state: CallState | None = None,
    unit_code: Annotated[str | None, Query(max_length=40)] = None,
    unit: Annotated[str | None, Query(max_length=40, description="same as unit_code")] = None,
    incident_id: Annotated[str | None, Query(max_length=32)] = None,
    interrupted: bool | None = None,
    number: Annotated[
        str | None,
        Query(max_length=40, description="a full number (E.164 match) or its last 3-15 digits"),
    ] = None,
    from_: Annotated[datetime | None, Query(alias="from")] = None,
    to: datetime | None = None,
    cursor: Annotated[str | None, Query(max_length=200, description="X-Next-Cursor")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: OffsetQuery = 0,
) -> list[CallSummary]:
    search = None
    if number is not None and number.strip():
        try:
            search = number_search(number, service.settings.dial_policy)
        except NumberError as exc:
            raise _invalid("number", exc.reason) from exc
    for name, value in (("from", from_), ("to", to)):
        if value is not None and value.tzinfo is None:
            raise _invalid(name, "give a time zone offset, e.g. 2026-12-01T00:00:00+08:00")
    filters = CallFilter(
        kind=kind, state=state, unit_code=unit_code or unit, incident_id=incident_id,
        interrupted=interrupted, created_from=from_, created_to=to,
        number=search.value if search else None, number_suffix=bool(search and search.suffix),
    )  # fmt: skip
    try:
        rows, next_cursor = search_calls(
            session, filters, limit=limit, cursor=cursor, offset=offset
        )
    except BadCursor as exc:
        raise _invalid("cursor", "not a cursor this service gave out") from exc
    if next_cursor:
        response.headers["X-Next-Cursor"] = next_cursor
    return [
        CallSummary(
            id=c.id,
            kind=c.kind.value,
            state=c.state.value,
            incident_id=c.incident_id,
            unit_code=c.unit_code,
            parties={leg.role: leg.number for leg in c.legs},
            recording_id=c.recording.id if c.recording else None,
            recordings=[r.id for r in c.recordings],
            created_by=c.created_by,
            created_at=c.created_at,
            connected_at=c.connected_at,
            ended_at=c.ended_at,
            end_reason=c.end_reason,
            interrupted=c.interrupted,
            gap_started_at=c.gap_started_at,
            resumed_at=c.resumed_at,
        )
        for c in rows
    ]
