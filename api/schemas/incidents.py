"""Request and response bodies of incidents (警情) and their timeline."""

from __future__ import annotations

from datetime import datetime, timedelta

from pydantic import BaseModel, Field

from storage.incidents import IncidentInfo, TransitionInfo
from storage.models.incidents import IncidentCategory, IncidentState

UNIT_CODE = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,39}$"


class IncidentIn(BaseModel):
    """A matter a dispatcher received."""

    reporter_number: str = Field(max_length=40, examples=["13812345678"])
    category: IncidentCategory
    type: str = Field(
        min_length=1, max_length=40, examples=["utility"], description="finer type, e.g. "
        "help, dispute, complaint, utility, traffic, theft",
    )  # fmt: skip
    summary: str = Field(min_length=1, max_length=4000, examples=["小区停电，请求供电公司处理"])
    received_at: datetime | None = Field(default=None, description="default: now")


class DivertIn(BaseModel):
    """Divert (分流) the incident to a linkage unit or township."""

    unit_code: str = Field(pattern=UNIT_CODE, examples=["L01"])
    note: str | None = Field(default=None, max_length=2000)


class AcceptIn(BaseModel):
    """The unit takes the matter on."""

    note: str | None = Field(default=None, max_length=2000)


class CloseIn(BaseModel):
    """The unit reports the matter done (办结反馈)."""

    feedback: str = Field(min_length=1, max_length=4000, examples=["已派员抢修，供电已恢复"])
    survey: bool = Field(default=True, description="schedule the callback survey (回访)")


class IncidentOut(BaseModel):
    """An incident."""

    id: str
    reporter_number: str
    category: IncidentCategory
    type: str
    summary: str
    received_at: datetime
    state: IncidentState
    unit_code: str | None
    feedback: str | None
    closed_at: datetime | None
    rework: bool
    rework_reason: str | None
    created_by: str
    updated_at: datetime
    survey_id: str | None = Field(default=None, description="the survey scheduled on close")
    diverted_at: datetime | None = Field(default=None, description="the latest diversion")
    accept_due_at: datetime | None = Field(
        default=None,
        description="diverted and not accepted: when LINKCALL_DIVERT_ACCEPT_MINUTES run out",
    )
    overdue: bool = Field(default=False, description="diverted and not accepted in time")

    @classmethod
    def of(
        cls,
        info: IncidentInfo,
        survey_id: str | None = None,
        *,
        accept_within: timedelta | None = None,
        now: datetime | None = None,
    ) -> IncidentOut:
        due = None
        if accept_within is not None and info.state is IncidentState.DIVERTED and info.diverted_at:
            due = info.diverted_at + accept_within
        return cls(
            id=info.id,
            reporter_number=info.reporter_number,
            category=info.category,
            type=info.type,
            summary=info.summary,
            received_at=info.received_at,
            state=info.state,
            unit_code=info.unit_code,
            feedback=info.feedback,
            closed_at=info.closed_at,
            rework=info.rework,
            rework_reason=info.rework_reason,
            created_by=info.created_by,
            updated_at=info.updated_at,
            survey_id=survey_id,
            diverted_at=info.diverted_at,
            accept_due_at=due,
            overdue=due is not None and now is not None and now >= due,
        )


class TransitionOut(BaseModel):
    """One entry of an incident's timeline."""

    from_state: IncidentState | None
    to_state: IncidentState
    actor: str
    role: str
    unit_code: str | None
    note: str | None
    at: datetime

    @classmethod
    def of(cls, t: TransitionInfo) -> TransitionOut:
        return cls(
            from_state=t.from_state,
            to_state=t.to_state,
            actor=t.actor,
            role=t.role,
            unit_code=t.unit_code,
            note=t.note,
            at=t.at,
        )
