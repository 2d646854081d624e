"""Repository for callback surveys: create, claim with a lease, store attempts, statistics.

Claims are the shared lease helper's (storage/claims.py, `SURVEYS`): serialised by an advisory
lock on PostgreSQL (SQLite's write lock on SQLite), rows taken with `FOR UPDATE SKIP LOCKED`, a
lease (`claimed_by`, `claimed_until`) renewed while the call runs; a dead process's leases
expire and its surveys are claimed again, so nothing is lost. A number with a survey `calling`
under a live lease is not claimed again, and one batch takes at most one survey per number:
one number is never called twice at once. Attempts are stored by storage/attempts.py.

This module does not decide retries: the caller (calls/survey_job.py) asks
callflows.survey.plan_next and hands the decision back with `apply_outcome`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from storage import incidents as incident_repo
from storage.attempts import AttemptInfo, AttemptValues, attempt_infos, settle
from storage.attempts import record_attempt as _record_attempt
from storage.base import utcnow
from storage.claims import LeaseTable
from storage.errors import Conflict, NotFound
from storage.models.incidents import Incident, IncidentCategory, IncidentState
from storage.models.surveys import FINISHED_STATUSES, Survey, SurveyAttempt, SurveyStatus

log = logging.getLogger(__name__)

CLAIM_LOCK_KEY = 0x6C63_7376  # "lcsv": the advisory lock serialising survey claims
SURVEYS = LeaseTable(
    Survey, CLAIM_LOCK_KEY, "attempts", waiting=SurveyStatus.PENDING,
    calling=SurveyStatus.CALLING, due_column="next_attempt_at", kind="survey",
    number_column="number", log=log, log_name="survey",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class SurveyInfo:
    """A survey as the API shows it (attempts oldest first)."""

    id: str
    number: str
    incident_id: str | None
    status: SurveyStatus
    not_before: datetime
    next_attempt_at: datetime | None
    attempts: int
    answer_key: str | None
    answer: str | None
    last_outcome: str | None
    end_reason: str | None
    recording_id: str | None
    created_by: str
    created_at: datetime
    answered_at: datetime | None
    finished_at: datetime | None
    attempt_log: tuple[AttemptInfo, ...] = ()

    @classmethod
    def of(cls, row: Survey, *, with_attempts: bool = False) -> SurveyInfo:
        log_rows = attempt_infos(row.attempt_rows) if with_attempts else ()
        return cls(
            id=row.id,
            number=row.number,
            incident_id=row.incident_id,
            status=row.status,
            not_before=row.not_before,
            next_attempt_at=row.next_attempt_at,
            attempts=row.attempts,
            answer_key=row.answer_key,
            answer=row.answer,
            last_outcome=row.last_outcome,
            end_reason=row.end_reason,
            recording_id=row.recording_id,
            created_by=row.created_by,
            created_at=row.created_at,
            answered_at=row.answered_at,
            finished_at=row.finished_at,
            attempt_log=log_rows,
        )


@dataclass(frozen=True, slots=True)
class ClaimedSurvey:
    """A survey this process now holds the lease of and must call."""

    id: str
    number: str
    attempt_no: int
    incident_id: str | None
    claimed_until: datetime


def create_survey(
    session: Session,
    *,
    number: str,
    first_attempt_at: datetime,
    incident_id: str | None = None,
    not_before: datetime | None = None,
    created_by: str = "system",
    now: datetime | None = None,
) -> SurveyInfo:
    """Store a pending survey due at `first_attempt_at` (Conflict: the incident has an open one)."""
    at = now or utcnow()
    if incident_id is not None:
        if session.get(Incident, incident_id) is None:
            raise NotFound("incident", incident_id)
        open_one = session.scalar(
            select(Survey.id).where(
                Survey.incident_id == incident_id, Survey.status.not_in(FINISHED_STATUSES)
            )
        )
        if open_one is not None:
            raise Conflict(f"incident {incident_id} already has an open survey {open_one}")
    row = Survey(
        number=number,
        incident_id=incident_id,
        status=SurveyStatus.PENDING,
        not_before=not_before or first_attempt_at,
        next_attempt_at=first_attempt_at,
        created_by=created_by,
        created_at=at,
    )
    session.add(row)
    session.flush()
    log.info("survey %s due %s", row.id, first_attempt_at.isoformat())
    return SurveyInfo.of(row)


def get_survey(session: Session, survey_id: str) -> SurveyInfo:
    """One survey with its attempts, or NotFound."""
    row = session.get(Survey, survey_id)
    if row is None:
        raise NotFound("survey", survey_id)
    return SurveyInfo.of(row, with_attempts=True)


def list_surveys(
    session: Session,
    *,
    status: SurveyStatus | None = None,
    created_from: datetime | None = None,
    created_to: datetime | None = None,
    incident_id: str | None = None,
    limit: int = 100,
    offset: int = 0,
) -> list[SurveyInfo]:
    """Surveys matching the filters, newest first; `created_to` is exclusive."""
    stmt = select(Survey)
    if status is not None:
        stmt = stmt.where(Survey.status == status)
    if created_from is not None:
        stmt = stmt.where(Survey.created_at >= created_from)
    if created_to is not None:
        stmt = stmt.where(Survey.created_at < created_to)
    if incident_id is not None:
        stmt = stmt.where(Survey.incident_id == incident_id)
    stmt = stmt.order_by(Survey.created_at.desc(), Survey.id).limit(limit).offset(offset)
    return [SurveyInfo.of(r) for r in session.scalars(stmt)]


def cancel_survey(session: Session, survey_id: str, *, now: datetime | None = None) -> SurveyInfo:
    """Cancel a pending survey (Conflict while it is calling or once finished)."""
    row = session.get(Survey, survey_id, with_for_update=True)
    if row is None:
        raise NotFound("survey", survey_id)
    if row.status is not SurveyStatus.PENDING:
        raise Conflict(f"survey {survey_id} is {row.status.value}; only pending ones are cancelled")
    row.status = SurveyStatus.CANCELLED
    row.next_attempt_at = None
    row.finished_at = now or utcnow()
    row.end_reason = "cancelled"
    session.flush()
    return SurveyInfo.of(row)


def claim_due(
    session: Session, *, node: str, now: datetime, lease: timedelta, limit: int
) -> list[ClaimedSurvey]:
    """Claim up to `limit` due surveys for `node` until `now + lease`. Commit right after.

    Due: pending with `next_attempt_at <= now`, or calling under an expired lease. Use a fresh
    session (the claim lock must be its first statement).
    """
    rows = SURVEYS.claim_due(session, node=node, now=now, lease=lease, limit=limit)
    return [ClaimedSurvey(r.id, r.number, r.attempts + 1, r.incident_id, now + lease) for r in rows]


def renew_leases(session: Session, *, node: str, survey_ids: list[str], until: datetime) -> int:
    """Extend this node's leases on surveys it is still calling; returns how many it holds."""
    return SURVEYS.renew(session, node=node, ids=survey_ids, until=until)


def record_attempt(
    session: Session, survey_id: str, *, node: str, attempt_no: int, values: AttemptValues
) -> tuple[bool, list[tuple[str, datetime, str | None]]]:
    """Store one finished call. Returns (still ours, every attempt's (outcome, ended_at)).

    "Still ours": the survey is calling under this node's lease; if not (the lease was lost),
    the attempt is stored but the caller must not change the survey's status.
    """
    row, owned, history = _record_attempt(
        session, SURVEYS, SurveyAttempt, survey_id, node=node, attempt_no=attempt_no,
        values=values,
    )  # fmt: skip
    if values.recording_id:
        row.recording_id = values.recording_id
        session.flush()
    return owned, history


def apply_outcome(
    session: Session,
    survey_id: str,
    *,
    status: SurveyStatus,
    now: datetime,
    reason: str,
    next_attempt_at: datetime | None = None,
    answer_key: str | None = None,
    answer: str | None = None,
    answered_at: datetime | None = None,
    rework_reason: str | None = None,
) -> SurveyInfo:
    """Release the lease and store the decision: pending again, answered or unreached.

    A finished survey moves its closed incident to `surveyed`; `rework_reason` flags it.
    """
    row = settle(session, SURVEYS, survey_id, status=status, now=now, reason=reason,
                 next_attempt_at=next_attempt_at)  # fmt: skip
    if status is SurveyStatus.ANSWERED:
        row.answer_key, row.answer, row.answered_at = answer_key, answer, answered_at or now
        session.flush()
    if status in FINISHED_STATUSES and row.incident_id is not None:
        _finish_incident(session, row, now, rework_reason)
    return SurveyInfo.of(row)


def _finish_incident(session: Session, row: Survey, now: datetime, rework: str | None) -> None:
    assert row.incident_id is not None
    if rework is not None:
        incident_repo.flag_rework(session, row.incident_id, rework, now=now)
    incident = incident_repo.get_incident(session, row.incident_id)
    if incident.state is IncidentState.CLOSED:
        note = f"callback {row.status.value}" + (f": {row.answer}" if row.answer else "")
        incident_repo.transition(
            session,
            row.incident_id,
            IncidentState.SURVEYED,
            actor=incident_repo.SYSTEM,
            now=now,
            note=note,
        )


@dataclass(frozen=True, slots=True)
class StatsCell:
    """How many finished surveys of one unit and category ended with one status and answer."""

    unit_code: str | None
    category: IncidentCategory | None
    status: SurveyStatus
    answer: str | None
    count: int
    type: str | None = None  # the incident's finer type (finished_facts only)
    dispatcher: str | None = None  # who recorded the incident (finished_facts only)
    rework: bool = False  # the incident is flagged for rework (finished_facts only)
    finished_at: datetime | None = None  # (finished_facts only)


def finished_facts(
    session: Session,
    *,
    finished_from: datetime | None = None,
    finished_to: datetime | None = None,
    unit_code: str | None = None,
    category: IncidentCategory | None = None,
) -> list[StatsCell]:
    """Each finished survey as a cell of count 1 with its incident's unit, category, type,
    dispatcher (who recorded it) and rework flag, and when it finished (for monthly trends in
    the county's zone, which SQL cannot group by portably). Same period and filters as
    `finished_counts`."""
    stmt = (
        select(Incident.unit_code, Incident.category, Incident.type, Incident.created_by,
               Incident.rework, Survey.status, Survey.answer, Survey.finished_at)
        .select_from(Survey)
        .outerjoin(Incident, Incident.id == Survey.incident_id)
        .where(Survey.status.in_(FINISHED_STATUSES))
    )  # fmt: skip
    if finished_from is not None:
        stmt = stmt.where(Survey.finished_at >= finished_from)
    if finished_to is not None:
        stmt = stmt.where(Survey.finished_at < finished_to)
    if unit_code is not None:
        stmt = stmt.where(Incident.unit_code == unit_code)
    if category is not None:
        stmt = stmt.where(Incident.category == category)
    return [
        StatsCell(u, c, st, a, 1, type=t, dispatcher=d, rework=bool(r), finished_at=f)
        for u, c, t, d, r, st, a, f in session.execute(stmt)
    ]


def finished_counts(
    session: Session,
    *,
    finished_from: datetime | None = None,
    finished_to: datetime | None = None,
    unit_code: str | None = None,
    category: IncidentCategory | None = None,
) -> list[StatsCell]:
    """Finished surveys (answered, unreached, cancelled) counted per unit, category, answer.

    The period is the time the survey finished, `finished_to` exclusive. Unit and category are
    the incident's; a survey without an incident has neither.
    """
    stmt = (
        select(Incident.unit_code, Incident.category, Survey.status, Survey.answer, func.count())
        .select_from(Survey)
        .outerjoin(Incident, Incident.id == Survey.incident_id)
        .where(Survey.status.in_(FINISHED_STATUSES))
        .group_by(Incident.unit_code, Incident.category, Survey.status, Survey.answer)
    )
    if finished_from is not None:
        stmt = stmt.where(Survey.finished_at >= finished_from)
    if finished_to is not None:
        stmt = stmt.where(Survey.finished_at < finished_to)
    if unit_code is not None:
        stmt = stmt.where(Incident.unit_code == unit_code)
    if category is not None:
        stmt = stmt.where(Incident.category == category)
    return [StatsCell(u, c, s, a, int(n)) for u, c, s, a, n in session.execute(stmt)]
