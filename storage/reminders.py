"""Repository for roster reminder calls: create, claim with a lease, store attempts, read.

Claims are the shared lease helper's (storage/claims.py, `REMINDERS`), as the surveys' are:
serialised by an advisory lock on PostgreSQL (SQLite's write lock on SQLite), rows taken with
`FOR UPDATE SKIP LOCKED`, a lease (`claimed_by`, `claimed_until`) renewed while the call runs; a
dead process's leases expire and its reminders are claimed again. A number with a reminder
`calling` under a live lease is not claimed again, and one batch takes at most one reminder
per number. Attempts are stored by storage/attempts.py.

This module does not decide retries: calls/reminder_job.py asks callflows.survey.plan_next.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from storage.attempts import AttemptInfo, AttemptValues, attempt_infos, settle
from storage.attempts import record_attempt as _record_attempt
from storage.claims import LeaseTable
from storage.errors import NotFound
from storage.models.registry import Unit
from storage.models.reminders import (
    OPEN_REMINDER_STATUSES,
    ReminderStatus,
    RosterReminderAttempt,
    RosterReminderCall,
)
from storage.registry import unit_codes

log = logging.getLogger(__name__)

CLAIM_LOCK_KEY = 0x6C63_726D  # "lcrm": the advisory lock serialising reminder claims
REMINDERS = LeaseTable(
    RosterReminderCall, CLAIM_LOCK_KEY, "attempts", waiting=ReminderStatus.PENDING,
    calling=ReminderStatus.CALLING, due_column="next_attempt_at", kind="roster reminder",
    number_column="number", log=log, log_name="reminder",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class ReminderInfo:
    """A reminder call as the API shows it (attempts oldest first)."""

    id: str
    run_id: str
    unit_code: str
    week: str
    number: str
    status: ReminderStatus
    next_attempt_at: datetime | None
    end_reason: str | None
    created_at: datetime
    finished_at: datetime | None
    attempts: tuple[AttemptInfo, ...] = ()


@dataclass(frozen=True, slots=True)
class ClaimedReminder:
    """A reminder this process now holds the lease of and must call."""

    id: str
    unit_code: str
    week: str
    number: str
    attempt_no: int
    claimed_until: datetime


def _info(row: RosterReminderCall, unit_code: str) -> ReminderInfo:
    return ReminderInfo(
        row.id, row.run_id, unit_code, row.week, row.number, row.status, row.next_attempt_at,
        row.end_reason, row.created_at, row.finished_at, attempt_infos(row.attempt_rows),
    )  # fmt: skip


def _unit_id(session: Session, code: str) -> int:
    unit_id = session.scalar(select(Unit.id).where(Unit.code == code))
    if unit_id is None:
        raise NotFound("unit", code)
    return unit_id


def create_reminder(
    session: Session,
    *,
    run_id: str,
    unit_code: str,
    week: str,
    number: str | None,
    due_at: datetime,
    created_by: str,
    now: datetime,
) -> ReminderInfo:
    """Store a pending reminder call due at `due_at`; without a number it is stored `failed`
    at once (`no_number`), so the unit still shows in the week's list."""
    row = RosterReminderCall(
        run_id=run_id,
        unit_id=_unit_id(session, unit_code),
        week=week,
        number=number or "",
        status=ReminderStatus.PENDING if number else ReminderStatus.FAILED,
        next_attempt_at=due_at if number else None,
        end_reason=None if number else "no_number",
        finished_at=None if number else now,
        created_by=created_by,
        created_at=now,
    )
    session.add(row)
    session.flush()
    return _info(row, unit_code)


def serialise_planning(session: Session) -> None:
    """Serialise queuing reminders across nodes (the claim lock): every node's weekly job
    runs at the same time, and each must see the reminders the others queued."""
    REMINDERS.lock(session)


def units_with_reminder(session: Session, week: str, *, open_only: bool = False) -> set[str]:
    """Codes of units with a reminder call for `week` (only pending/calling ones if asked)."""
    stmt = (
        select(Unit.code)
        .join(RosterReminderCall, RosterReminderCall.unit_id == Unit.id)
        .where(RosterReminderCall.week == week)
    )
    if open_only:
        stmt = stmt.where(RosterReminderCall.status.in_(OPEN_REMINDER_STATUSES))
    return set(session.scalars(stmt))


def week_reminders(session: Session, week: str) -> list[ReminderInfo]:
    """The latest reminder call of each unit for `week`, with its attempts, by unit code."""
    stmt = (
        select(RosterReminderCall, Unit.code)
        .join(Unit, Unit.id == RosterReminderCall.unit_id)
        .where(RosterReminderCall.week == week)
        .order_by(Unit.code, RosterReminderCall.created_at, RosterReminderCall.id)
    )
    latest: dict[str, ReminderInfo] = {}
    for row, code in session.execute(stmt):
        latest[code] = _info(row, code)  # later rows of a unit replace earlier ones
    return list(latest.values())


def claim_due(
    session: Session, *, node: str, now: datetime, lease: timedelta, limit: int
) -> list[ClaimedReminder]:
    """Claim up to `limit` due reminders for `node` until `now + lease`. Commit right after.

    Due: pending with `next_attempt_at <= now`, or calling under an expired lease.
    """
    rows = REMINDERS.claim_due(session, node=node, now=now, lease=lease, limit=limit)
    codes = unit_codes(session, {r.unit_id for r in rows})
    return [
        ClaimedReminder(r.id, codes[r.unit_id], r.week, r.number, r.attempts + 1, now + lease)
        for r in rows
    ]


def renew_lease(session: Session, *, node: str, reminder_id: str, until: datetime) -> bool:
    """Extend this node's lease on a reminder it is still calling; False when lost."""
    return REMINDERS.renew(session, node=node, ids=[reminder_id], until=until) > 0


def record_attempt(
    session: Session, reminder_id: str, *, node: str, attempt_no: int, values: AttemptValues
) -> tuple[bool, list[tuple[str, datetime, str | None]]]:
    """Store one finished call. Returns (still ours, every attempt's (outcome, ended_at))."""
    _row, owned, history = _record_attempt(
        session, REMINDERS, RosterReminderAttempt, reminder_id, node=node,
        attempt_no=attempt_no, values=values,
    )  # fmt: skip
    return owned, history


def apply_outcome(
    session: Session,
    reminder_id: str,
    *,
    status: ReminderStatus,
    now: datetime,
    reason: str,
    next_attempt_at: datetime | None = None,
) -> ReminderStatus:
    """Release the lease and store the decision: pending again, or a final status."""
    row = settle(session, REMINDERS, reminder_id, status=status, now=now, reason=reason[:60],
                 next_attempt_at=next_attempt_at)  # fmt: skip
    return row.status
