"""Repository for incidents: plain values in, plain values out.

Numbers handed in are already canonical (registry/numbers.py). The legal state changes are in
`TRANSITIONS`; every change writes an `IncidentTransition` row in the same unit of work.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session, selectinload

from storage.base import utcnow
from storage.errors import Conflict, NotFound
from storage.models.incidents import (
    Incident,
    IncidentCategory,
    IncidentState,
    IncidentTransition,
)

log = logging.getLogger(__name__)

_S = IncidentState
TRANSITIONS: dict[IncidentState, frozenset[IncidentState]] = {
    _S.RECEIVED: frozenset({_S.DIVERTED, _S.CLOSED}),
    _S.DIVERTED: frozenset({_S.DIVERTED, _S.ACCEPTED}),
    _S.ACCEPTED: frozenset({_S.CLOSED}),
    _S.CLOSED: frozenset({_S.SURVEYED, _S.DIVERTED}),
    _S.SURVEYED: frozenset({_S.DIVERTED}),
}
"""received → diverted → accepted → closed → surveyed. Also: a police matter is closed by the
center without diverting; a diverted matter may be diverted to another unit; a closed or
surveyed matter flagged for rework is diverted again."""


class IllegalTransition(Conflict):
    """The incident is not in a state that allows the change."""

    def __init__(self, incident_id: str, state: IncidentState, wanted: IncidentState) -> None:
        super().__init__(
            f"incident {incident_id} is {state.value}; it cannot become {wanted.value}"
        )
        self.state = state
        self.wanted = wanted


@dataclass(frozen=True, slots=True)
class Actor:
    """Who makes a change: a person's token name and role, or `system`."""

    name: str
    role: str


SYSTEM = Actor("system", "system")


@dataclass(frozen=True, slots=True)
class IncidentInfo:
    """One incident as the API shows it."""

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
    diverted_at: datetime | None = None  # the latest diversion (to its current unit)

    @classmethod
    def of(cls, row: Incident) -> IncidentInfo:
        return cls(
            id=row.id,
            reporter_number=row.reporter_number,
            category=row.category,
            type=row.type,
            summary=row.summary,
            received_at=row.received_at,
            state=row.state,
            unit_code=row.unit_code,
            feedback=row.feedback,
            closed_at=row.closed_at,
            rework=row.rework,
            rework_reason=row.rework_reason,
            created_by=row.created_by,
            updated_at=row.updated_at,
            diverted_at=max(
                (t.at for t in row.transitions if t.to_state is IncidentState.DIVERTED),
                default=None,
            ),
        )


@dataclass(frozen=True, slots=True)
class TransitionInfo:
    """One entry of an incident's timeline."""

    from_state: IncidentState | None
    to_state: IncidentState
    actor: str
    role: str
    unit_code: str | None
    note: str | None
    at: datetime


def create_incident(
    session: Session,
    *,
    reporter_number: str,
    category: IncidentCategory,
    type: str,
    summary: str,
    received_at: datetime,
    actor: Actor,
    now: datetime | None = None,
) -> IncidentInfo:
    """Store a received incident and its first timeline entry."""
    at = now or utcnow()
    row = Incident(
        reporter_number=reporter_number,
        category=category,
        type=type,
        summary=summary,
        received_at=received_at,
        state=IncidentState.RECEIVED,
        created_by=actor.name,
        created_at=at,
        updated_at=at,
    )
    row.transitions.append(
        IncidentTransition(
            from_state=None,
            to_state=IncidentState.RECEIVED,
            actor=actor.name,
            role=actor.role,
            at=at,
        )
    )
    session.add(row)
    session.flush()
    return IncidentInfo.of(row)


def _row(session: Session, incident_id: str, *, lock: bool = False) -> Incident:
    row = session.get(Incident, incident_id, with_for_update=lock or None)
    if row is None:
        raise NotFound("incident", incident_id)
    return row


def get_incident(session: Session, incident_id: str) -> IncidentInfo:
    """One incident, or NotFound."""
    return IncidentInfo.of(_row(session, incident_id))


def list_incidents(
    session: Session,
    *,
    state: IncidentState | None = None,
    category: IncidentCategory | None = None,
    unit_code: str | None = None,
    rework: bool | None = None,
    received_from: datetime | None = None,
    received_to: datetime | None = None,
    diverted_before: datetime | None = None,
    limit: int = 100,
    offset: int = 0,
) -> list[IncidentInfo]:
    """Incidents matching every given filter, newest first; `received_to` is exclusive.
    `diverted_before`: diverted (not yet accepted) since before that time (overdue)."""
    stmt = select(Incident).options(selectinload(Incident.transitions))
    if diverted_before is not None:
        last_divert = (
            select(func.max(IncidentTransition.at))
            .where(
                IncidentTransition.incident_id == Incident.id,
                IncidentTransition.to_state == IncidentState.DIVERTED,
            )
            .scalar_subquery()
        )
        stmt = stmt.where(Incident.state == IncidentState.DIVERTED, last_divert < diverted_before)
    if state is not None:
        stmt = stmt.where(Incident.state == state)
    if category is not None:
        stmt = stmt.where(Incident.category == category)
    if unit_code is not None:
        stmt = stmt.where(Incident.unit_code == unit_code)
    if rework is not None:
        stmt = stmt.where(Incident.rework == rework)
    if received_from is not None:
        stmt = stmt.where(Incident.received_at >= received_from)
    if received_to is not None:
        stmt = stmt.where(Incident.received_at < received_to)
    stmt = stmt.order_by(Incident.received_at.desc(), Incident.id).limit(limit).offset(offset)
    return [IncidentInfo.of(r) for r in session.scalars(stmt)]


def transition(
    session: Session,
    incident_id: str,
    to_state: IncidentState,
    *,
    actor: Actor,
    now: datetime | None = None,
    unit_code: str | None = None,
    feedback: str | None = None,
    note: str | None = None,
) -> IncidentInfo:
    """Move an incident to `to_state` (IllegalTransition if the table forbids it)."""
    at = now or utcnow()
    row = _row(session, incident_id, lock=True)
    if to_state not in TRANSITIONS[row.state]:
        raise IllegalTransition(incident_id, row.state, to_state)
    if to_state is IncidentState.DIVERTED:
        if unit_code is None:
            raise Conflict("diverting needs a unit")
        if row.state in (IncidentState.CLOSED, IncidentState.SURVEYED) and not row.rework:
            raise IllegalTransition(incident_id, row.state, to_state)
        row.unit_code = unit_code
    if to_state is IncidentState.CLOSED:
        row.feedback = feedback
        row.closed_at = at
    row.transitions.append(
        IncidentTransition(
            from_state=row.state,
            to_state=to_state,
            actor=actor.name,
            role=actor.role,
            unit_code=row.unit_code,
            note=note if note is not None else feedback,
            at=at,
        )
    )
    log.info(
        "incident %s - %s -> %s by %s", incident_id, row.state.value, to_state.value, actor.name
    )
    row.state = to_state
    row.updated_at = at
    session.flush()
    return IncidentInfo.of(row)


def flag_rework(
    session: Session, incident_id: str, reason: str, *, now: datetime | None = None
) -> IncidentInfo:
    """Mark the incident for rework (an unsatisfied callback answer)."""
    row = _row(session, incident_id, lock=True)
    row.rework = True
    row.rework_reason = reason
    row.updated_at = now or utcnow()
    session.flush()
    log.info("incident %s flagged for rework: %s", incident_id, reason)
    return IncidentInfo.of(row)


def timeline(session: Session, incident_id: str) -> list[TransitionInfo]:
    """Every state change of the incident, oldest first (NotFound for an unknown id)."""
    row = _row(session, incident_id)
    return [
        TransitionInfo(t.from_state, t.to_state, t.actor, t.role, t.unit_code, t.note, t.at)
        for t in row.transitions
    ]
