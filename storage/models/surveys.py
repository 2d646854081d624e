"""Callback surveys (回访) and their call attempts.

A survey calls one number until it is answered with a valid key, runs out of attempts
(unreached) or is cancelled. `status` is the durable truth the dispatcher works from:

    pending ──claim──▶ calling ──attempt stored──▶ pending (retry) | answered | unreached
    calling ──lease expired (the claiming process died)──▶ claimed again by another process
    pending ──cancel──▶ cancelled

`claimed_by`/`claimed_until` are the lease of the process calling it now (see
storage/surveys.py). `recording_id` names the call's recording (a plain string: recordings
live in their own store).
"""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import Enum, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from storage.base import Base, new_id, utcnow


def _enum(cls: type[enum.Enum], length: int = 20) -> Enum:
    return Enum(
        cls, native_enum=False, length=length, values_callable=lambda e: [m.value for m in e]
    )


class SurveyStatus(enum.StrEnum):
    """Where a survey stands."""

    PENDING = "pending"
    CALLING = "calling"
    ANSWERED = "answered"
    UNREACHED = "unreached"
    CANCELLED = "cancelled"


FINISHED_STATUSES = frozenset(
    {SurveyStatus.ANSWERED, SurveyStatus.UNREACHED, SurveyStatus.CANCELLED}
)


class Survey(Base):
    """One callback survey of one number (usually an incident's reporter)."""

    __tablename__ = "surveys"
    __table_args__ = (
        Index("ix_surveys_status_next_attempt_at", "status", "next_attempt_at"),
        Index("ix_surveys_number_status", "number", "status"),
        Index("ix_surveys_finished_at", "finished_at"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    number: Mapped[str] = mapped_column(String(40))
    incident_id: Mapped[str | None] = mapped_column(
        ForeignKey("incidents.id", ondelete="SET NULL"), default=None, index=True
    )
    status: Mapped[SurveyStatus] = mapped_column(_enum(SurveyStatus), default=SurveyStatus.PENDING)
    not_before: Mapped[datetime]
    next_attempt_at: Mapped[datetime | None] = mapped_column(default=None)
    attempts: Mapped[int] = mapped_column(default=0)
    answer_key: Mapped[str | None] = mapped_column(String(4), default=None)
    answer: Mapped[str | None] = mapped_column(String(40), default=None)
    last_outcome: Mapped[str | None] = mapped_column(String(20), default=None)
    end_reason: Mapped[str | None] = mapped_column(String(60), default=None)
    claimed_by: Mapped[str | None] = mapped_column(String(120), default=None)
    claimed_until: Mapped[datetime | None] = mapped_column(default=None)
    recording_id: Mapped[str | None] = mapped_column(String(64), default=None)
    created_by: Mapped[str] = mapped_column(String(200), default="system")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    answered_at: Mapped[datetime | None] = mapped_column(default=None)
    finished_at: Mapped[datetime | None] = mapped_column(default=None)

    attempt_rows: Mapped[list[SurveyAttempt]] = relationship(
        order_by="SurveyAttempt.id", cascade="all, delete-orphan"
    )


class SurveyAttempt(Base):
    """One call placed for a survey, and how it went."""

    __tablename__ = "survey_attempts"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    survey_id: Mapped[str] = mapped_column(ForeignKey("surveys.id", ondelete="CASCADE"), index=True)
    attempt_no: Mapped[int]
    node: Mapped[str] = mapped_column(String(120))
    outcome: Mapped[str] = mapped_column(String(20))
    sip_reason: Mapped[str | None] = mapped_column(String(60), default=None)
    key: Mapped[str | None] = mapped_column(String(4), default=None)
    digits: Mapped[str] = mapped_column(String(40), default="")
    recording_id: Mapped[str | None] = mapped_column(String(64), default=None)
    started_at: Mapped[datetime]
    ended_at: Mapped[datetime]
