"""Repository for roster reminder calls: create, claim with a lease, store attempts, read.

Claims work as the surveys' do (storage/surveys.py): serialised by an advisory lock on
PostgreSQL (SQLite's write lock on SQLite), rows taken with `FOR UPDATE SKIP LOCKED`, a lease
(`claimed_by`, `claimed_until`) renewed while the call runs; a dead process's leases expire and
its reminders are claimed again. A number with a reminder `calling` under a live lease is not
claimed again, and one batch takes at most one reminder per number.

This module does not decide retries: calls/reminder_job.py asks callflows.survey.plan_next.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, or_, select, update
from sqlalchemy.orm import Session

from storage.claims import serialise_claims
from storage.errors import NotFound
from storage.models.registry import Unit
from storage.models.reminders import (
    OPEN_REMINDER_STATUSES,
    ReminderStatus,
    RosterReminderAttempt,
    RosterReminderCall,
)
from storage.surveys import AttemptValues

log = logging.getLogger(__name__)

CLAIM_LOCK_KEY = 0x6C63_726D  # "lcrm": the advisory lock serialising reminder claims

__all__ = ["AttemptValues", "ClaimedReminder", "ReminderAttemptInfo", "ReminderInfo"]


@dataclass(frozen=True, slots=True)
class ReminderAttemptInfo:
    """One call placed for a reminder."""

    attempt_no: int
    node: str
    outcome: str
    sip_reason: str | None
    key: str | None
    digits: str
    recording_id: str | None
    started_at: datetime
    ended_at: datetime


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
    attempts: tuple[ReminderAttemptInfo, ...] = ()


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
    attempts = tuple(
        ReminderAttemptInfo(
            a.attempt_no, a.node, a.outcome, a.sip_reason, a.key, a.digits, a.recording_id,
            a.started_at, a.ended_at,
        )
        for a in row.attempt_rows
    )  # fmt: skip
    return ReminderInfo(
        row.id, row.run_id, unit_code, row.week, row.number, row.status, row.next_attempt_at,
        row.end_reason, row.created_at, row.finished_at, attempts,
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
    table = RosterReminderCall.__table__
    serialise_claims(session, CLAIM_LOCK_KEY, table, "attempts")  # type: ignore[arg-type]


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
    if limit <= 0:
        return []
    table = RosterReminderCall.__table__
    serialise_claims(session, CLAIM_LOCK_KEY, table, "attempts")  # type: ignore[arg-type]
    busy_numbers = select(RosterReminderCall.number).where(
        RosterReminderCall.status == ReminderStatus.CALLING,
        RosterReminderCall.claimed_until > now,
    )
    due = or_(
        and_(
            RosterReminderCall.status == ReminderStatus.PENDING,
            RosterReminderCall.next_attempt_at <= now,
        ),
        and_(
            RosterReminderCall.status == ReminderStatus.CALLING,
            RosterReminderCall.claimed_until <= now,
        ),
    )
    stmt = (
        select(RosterReminderCall)
        .where(due, RosterReminderCall.number.not_in(busy_numbers))
        .order_by(RosterReminderCall.next_attempt_at, RosterReminderCall.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    until = now + lease
    rows = list(session.scalars(stmt))
    codes = dict(
        session.execute(
            select(Unit.id, Unit.code).where(Unit.id.in_({r.unit_id for r in rows}))
        ).all()
    )
    claimed: list[ClaimedReminder] = []
    numbers: set[str] = set()
    for row in rows:
        if row.number in numbers:
            continue  # one call per number at a time, also within a batch
        numbers.add(row.number)
        if row.status is ReminderStatus.CALLING:
            log.warning(
                "reminder %s: lease of %s expired, claiming it again", row.id, row.claimed_by
            )
        row.status = ReminderStatus.CALLING
        row.claimed_by = node
        row.claimed_until = until
        claimed.append(
            ClaimedReminder(
                row.id, codes[row.unit_id], row.week, row.number, row.attempts + 1, until
            )
        )
    session.flush()
    return claimed


def renew_lease(session: Session, *, node: str, reminder_id: str, until: datetime) -> bool:
    """Extend this node's lease on a reminder it is still calling; False when lost."""
    result = session.execute(
        update(RosterReminderCall)
        .where(
            RosterReminderCall.id == reminder_id,
            RosterReminderCall.claimed_by == node,
            RosterReminderCall.status == ReminderStatus.CALLING,
        )
        .values(claimed_until=until)
    )
    return bool(getattr(result, "rowcount", 0))


def record_attempt(
    session: Session, reminder_id: str, *, node: str, attempt_no: int, values: AttemptValues
) -> tuple[bool, list[tuple[str, datetime]]]:
    """Store one finished call. Returns (still ours, every attempt's (outcome, ended_at))."""
    row = session.get(RosterReminderCall, reminder_id, with_for_update=True)
    if row is None:
        raise NotFound("roster reminder", reminder_id)
    row.attempt_rows.append(
        RosterReminderAttempt(
            attempt_no=attempt_no,
            node=node,
            outcome=values.outcome,
            sip_reason=values.sip_reason,
            key=values.key,
            digits=values.digits,
            recording_id=values.recording_id,
            started_at=values.started_at,
            ended_at=values.ended_at,
        )
    )
    row.attempts = len(row.attempt_rows)
    row.last_outcome = values.outcome
    session.flush()
    owned = row.status is ReminderStatus.CALLING and row.claimed_by == node
    if not owned:
        log.warning("reminder %s: attempt stored after the lease of %s was lost", reminder_id, node)
    return owned, [(a.outcome, a.ended_at) for a in row.attempt_rows]


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
    row = session.get(RosterReminderCall, reminder_id, with_for_update=True)
    if row is None:
        raise NotFound("roster reminder", reminder_id)
    row.claimed_by = None
    row.claimed_until = None
    row.status = status
    row.next_attempt_at = next_attempt_at if status is ReminderStatus.PENDING else None
    if status not in OPEN_REMINDER_STATUSES:
        row.finished_at = now
        row.end_reason = reason[:60]
    session.flush()
    return row.status
