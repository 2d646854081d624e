"""Every call the service carried, filterable (issue 5)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel
from sqlalchemy import select

from api.auth import DispatcherDep
from api.deps import SessionDep
from storage.models.call_records import Call, CallKind, CallState

router = APIRouter(prefix="/api/v1/calls", tags=["calls"])


class CallSummary(BaseModel):
    id: str
    kind: str
    state: str
    incident_id: str | None
    unit_code: str | None
    parties: dict[str, str | None]
    recording_id: str | None
    created_by: str
    created_at: datetime
    connected_at: datetime | None
    ended_at: datetime | None
    end_reason: str | None
    interrupted: bool


@router.get("", response_model=list[CallSummary], summary="Calls, newest first")
def list_calls(
    session: SessionDep,
    _principal: DispatcherDep,
    kind: CallKind | None = None,
    state: CallState | None = None,
    unit_code: str | None = None,
    incident_id: str | None = None,
    interrupted: bool | None = None,
    from_: Annotated[datetime | None, Query(alias="from")] = None,
    to: datetime | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> list[CallSummary]:
    stmt = select(Call).order_by(Call.created_at.desc(), Call.id).limit(limit).offset(offset)
    filters = {
        Call.kind: kind,
        Call.state: state,
        Call.unit_code: unit_code,
        Call.incident_id: incident_id,
        Call.interrupted: interrupted,
    }
    for column, value in filters.items():
        if value is not None:
            stmt = stmt.where(column == value)
    if from_ is not None:
        stmt = stmt.where(Call.created_at >= from_)
    if to is not None:
        stmt = stmt.where(Call.created_at < to)
    return [
        CallSummary(
            id=c.id,
            kind=c.kind.value,
            state=c.state.value,
            incident_id=c.incident_id,
            unit_code=c.unit_code,
            parties={leg.role: leg.number for leg in c.legs},
            recording_id=c.recording.id if c.recording else None,
            created_by=c.created_by,
            created_at=c.created_at,
            connected_at=c.connected_at,
            ended_at=c.ended_at,
            end_reason=c.end_reason,
            interrupted=c.interrupted,
        )
        for c in session.scalars(stmt)
    ]
