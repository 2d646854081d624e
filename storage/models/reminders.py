"""Roster reminder calls (勤务报备提醒), the webhook outbox and planned duty checks.

A roster reminder call rings one unit until someone presses 1, or its attempts run out. Like a
survey (storage/models/surveys.py) `status` is the durable truth and `claimed_by` /
`claimed_until` the lease of the process calling it now:

    pending ──claim──▶ calling ──attempt stored──▶ pending (retry) | acknowledged
                                                   | not_acknowledged | no_answer | busy | failed

A webhook event is kept in the outbox until the receiver accepted it (`delivered_at`); a
planned duty check is a 查岗 the schedule placed at `due_at`, claimed when due:

    pending ──claim──▶ sending ──▶ pending (retry) | delivered
    planned ──claim──▶ calling ──▶ done | failed;   planned ──too late──▶ missed
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Enum, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from storage.base import Base, new_id, utcnow


def _enum(cls: type[enum.Enum], length: int = 20) -> Enum:
    return Enum(
        cls, native_enum=False, length=length, values_callable=lambda e: [m.value for m in e]
    )


class ReminderStatus(enum.StrEnum):
    """Where a reminder call stands; the last five are final."""

    PENDING = "pending"
    CALLING = "calling"
    ACKNOWLEDGED = "acknowledged"
    NOT_ACKNOWLEDGED = "not_acknowledged"
    NO_ANSWER = "no_answer"
    BUSY = "busy"
    FAILED = "failed"


OPEN_REMINDER_STATUSES = frozenset({ReminderStatus.PENDING, ReminderStatus.CALLING})


class RosterReminderCall(Base):
    """One unit called about one week's missing roster (a `run` groups one request's calls)."""

    __tablename__ = "roster_reminder_calls"
    __table_args__ = (
        Index("ix_roster_reminder_calls_status_next_attempt_at", "status", "next_attempt_at"),
        Index("ix_roster_reminder_calls_week", "week"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    run_id: Mapped[str] = mapped_column(String(32), index=True)
    unit_id: Mapped[int] = mapped_column(ForeignKey("units.id", ondelete="CASCADE"))
    week: Mapped[str] = mapped_column(String(8))
    number: Mapped[str] = mapped_column(String(40))
    status: Mapped[ReminderStatus] = mapped_column(_enum(ReminderStatus))
    next_attempt_at: Mapped[datetime | None] = mapped_column(default=None)
    attempts: Mapped[int] = mapped_column(default=0)
    last_outcome: Mapped[str | None] = mapped_column(String(20), default=None)
    end_reason: Mapped[str | None] = mapped_column(String(60), default=None)
    claimed_by: Mapped[str | None] = mapped_column(String(120), default=None)
    claimed_until: Mapped[datetime | None] = mapped_column(default=None)
    created_by: Mapped[str] = mapped_column(String(200), default="system")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(default=None)

    attempt_rows: Mapped[list[RosterReminderAttempt]] = relationship(
        order_by="RosterReminderAttempt.id", cascade="all, delete-orphan"
    )


class RosterReminderAttempt(Base):
    """One call placed for a reminder, and how it went."""

    __tablename__ = "roster_reminder_attempts"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    reminder_id: Mapped[str] = mapped_column(
        ForeignKey("roster_reminder_calls.id", ondelete="CASCADE"), index=True
    )
    attempt_no: Mapped[int]
    node: Mapped[str] = mapped_column(String(120))
    outcome: Mapped[str] = mapped_column(String(20))
    sip_reason: Mapped[str | None] = mapped_column(String(60), default=None)
    key: Mapped[str | None] = mapped_column(String(4), default=None)
    digits: Mapped[str] = mapped_column(String(40), default="")
    recording_id: Mapped[str | None] = mapped_column(String(64), default=None)
    started_at: Mapped[datetime]
    ended_at: Mapped[datetime]


class OutboxStatus(enum.StrEnum):
    """Where a webhook event stands; `delivered` is final."""

    PENDING = "pending"
    SENDING = "sending"
    DELIVERED = "delivered"


class WebhookOutbox(Base):
    """One event for the county's SMS gateway / chat bot, kept until delivered.

    `body` is the exact JSON sent (and signed) on every attempt; `dedupe_key` makes an event
    that must exist once (one `roster.missing` per unit and week) unique.
    """

    __tablename__ = "webhook_outbox"
    __table_args__ = (
        Index("ix_webhook_outbox_status_next_attempt_at", "status", "next_attempt_at"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    event: Mapped[str] = mapped_column(String(40))
    dedupe_key: Mapped[str | None] = mapped_column(String(200), unique=True, default=None)
    body: Mapped[str] = mapped_column(Text)
    status: Mapped[OutboxStatus] = mapped_column(_enum(OutboxStatus), default=OutboxStatus.PENDING)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime]
    last_error: Mapped[str | None] = mapped_column(String(200), default=None)
    delivered_at: Mapped[datetime | None] = mapped_column(default=None)
    claimed_by: Mapped[str | None] = mapped_column(String(120), default=None)
    claimed_until: Mapped[datetime | None] = mapped_column(default=None)
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class PlanStatus(enum.StrEnum):
    """Where a planned duty check stands."""

    PLANNED = "planned"
    CALLING = "calling"
    DONE = "done"
    FAILED = "failed"
    MISSED = "missed"


class PlannedDutyCheck(Base):
    """A 查岗 the schedule (LINKCALL_DUTY_CHECK_SCHEDULE) placed for a unit at `due_at`."""

    __tablename__ = "planned_duty_checks"
    __table_args__ = (
        UniqueConstraint("unit_id", "due_at", name="uq_planned_duty_checks_unit_id_due_at"),
        Index("ix_planned_duty_checks_status_due_at", "status", "due_at"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    unit_id: Mapped[int] = mapped_column(ForeignKey("units.id", ondelete="CASCADE"))
    due_at: Mapped[datetime]
    rule: Mapped[str] = mapped_column(String(60))
    status: Mapped[PlanStatus] = mapped_column(_enum(PlanStatus))
    claimed_by: Mapped[str | None] = mapped_column(String(120), default=None)
    claimed_until: Mapped[datetime | None] = mapped_column(default=None)
    check_id: Mapped[str | None] = mapped_column(
        ForeignKey("duty_checks.id", ondelete="SET NULL"), default=None
    )
    detail: Mapped[str | None] = mapped_column(String(200), default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
