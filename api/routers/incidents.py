"""Incidents (警情): create, list, divert to a unit, accept, close with feedback, timeline.

Dispatchers (and supervisors, admins) create, divert and read every incident; a unit token
reads, accepts and closes only the incidents diverted to its own unit (403 otherwise).
Closing schedules the callback survey (回访) for the reporter's number.
"""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import AwareDatetime

from api.auth import DispatcherDep, PrincipalDep, ensure_unit_scope
from api.deps import OffsetQuery, ServiceDep, SessionDep
from api.problems import Problem
from api.schemas.incidents import (
    AcceptIn,
    CloseIn,
    DivertIn,
    IncidentIn,
    IncidentOut,
    TransitionOut,
)
from calls.survey_scheduling import schedule_after_close
from registry.numbers import NumberError
from storage import audit, registry
from storage import incidents as repo
from storage.base import utcnow
from storage.errors import NotFound
from storage.incidents import Actor, IncidentInfo
from storage.models.auth import Role
from storage.models.incidents import IncidentCategory, IncidentState
from storage.tokens import Principal
from telephony.privacy import mask_number

log = logging.getLogger(__name__)
router = APIRouter(prefix="/api/v1/incidents", tags=["incidents"])


def actor_of(principal: Principal) -> Actor:
    """The actor stored on timeline entries."""
    return Actor(principal.name, principal.role.value)


def field_problem(field: str, message: str, type_: str) -> Problem:
    """A 422 problem naming one field and the reason."""
    err = {"field": field, "message": message, "type": type_}
    return Problem(422, "Invalid request", f"{field}: {message}", kind="validation", errors=[err])


def publish(service: ServiceDep, info: IncidentInfo) -> None:
    """Tell event-stream subscribers (on the service's loop: handlers run in a worker thread)."""
    data = {"id": info.id, "state": info.state.value, "unit_code": info.unit_code,
            "category": info.category.value, "rework": info.rework}  # fmt: skip
    if service.loop is not None:
        service.loop.call_soon_threadsafe(service.events.publish, f"incident.{info.state}", data)


def _out(service: ServiceDep, info: IncidentInfo, survey_id: str | None = None) -> IncidentOut:
    """The incident with its acceptance deadline (LINKCALL_DIVERT_ACCEPT_MINUTES), overdue flag."""
    return IncidentOut.of(info, survey_id, accept_within=service.settings.divert_accept_within,
                          now=utcnow())  # fmt: skip


def _readable(session: SessionDep, principal: Principal, incident_id: str) -> IncidentInfo:
    info = repo.get_incident(session, incident_id)
    if principal.role is Role.UNIT:
        if info.unit_code is None:
            raise Problem(403, "Forbidden", "this incident is not diverted to your unit")
        ensure_unit_scope(principal, info.unit_code)
    return info


def _may_handle(principal: Principal, info: IncidentInfo) -> None:
    """Accept/close: the unit the incident is diverted to (or an admin); without a unit, the
    center (a police matter closed without diverting)."""
    if info.unit_code is not None:
        ensure_unit_scope(principal, info.unit_code)
    elif principal.role not in (Role.DISPATCHER, Role.SUPERVISOR, Role.ADMIN):
        raise Problem(403, "Forbidden", "only the center closes an incident it did not divert")


@router.post("", response_model=IncidentOut, status_code=201, summary="Record an incident")
def create_incident(
    body: IncidentIn, session: SessionDep, service: ServiceDep, principal: DispatcherDep
) -> IncidentOut:
    settings = service.settings
    try:
        number = settings.dial_policy.parse(body.reporter_number, field="reporter_number")
    except NumberError as exc:
        raise field_problem("reporter_number", exc.reason, "phone_number") from exc
    info = repo.create_incident(
        session,
        reporter_number=number.canonical,
        category=body.category,
        type=body.type.strip(),
        summary=body.summary.strip(),
        received_at=body.received_at or utcnow(),
        actor=actor_of(principal),
    )
    audit.record(session, principal, "incident.create", "incident", info.id)
    log.info("incident %s from %s (%s)", info.id, mask_number(info.reporter_number), info.category)
    publish(service, info)
    return _out(service, info)


@router.get("", response_model=list[IncidentOut], summary="List and filter incidents")
def list_incidents(
    session: SessionDep,
    service: ServiceDep,
    principal: PrincipalDep,
    state: IncidentState | None = None,
    category: IncidentCategory | None = None,
    unit: Annotated[str | None, Query(max_length=40)] = None,
    rework: bool | None = None,
    overdue: Annotated[
        bool | None,
        Query(description="true: diverted and not accepted within LINKCALL_DIVERT_ACCEPT_MINUTES"),
    ] = None,
    from_: Annotated[AwareDatetime | None, Query(alias="from")] = None,
    to: AwareDatetime | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: OffsetQuery = 0,
) -> list[IncidentOut]:
    if principal.role is Role.UNIT:
        if unit is not None:
            ensure_unit_scope(principal, unit)
        unit = principal.unit_code
    rows = repo.list_incidents(
        session, state=state, category=category, unit_code=unit, rework=rework,
        received_from=from_, received_to=to, limit=limit, offset=offset,
        diverted_before=utcnow() - service.settings.divert_accept_within if overdue else None,
    )  # fmt: skip
    return [_out(service, i) for i in rows]


@router.get("/{incident_id}", response_model=IncidentOut, summary="One incident")
def get_incident(
    incident_id: str, session: SessionDep, service: ServiceDep, principal: PrincipalDep
) -> IncidentOut:
    return _out(service, _readable(session, principal, incident_id))


@router.get("/{incident_id}/timeline", response_model=list[TransitionOut], summary="State changes")
def timeline(incident_id: str, session: SessionDep, principal: PrincipalDep) -> list[TransitionOut]:
    _readable(session, principal, incident_id)
    return [TransitionOut.of(t) for t in repo.timeline(session, incident_id)]


@router.post("/{incident_id}/divert", response_model=IncidentOut, summary="Divert to a unit")
def divert(
    incident_id: str,
    body: DivertIn,
    session: SessionDep,
    service: ServiceDep,
    principal: DispatcherDep,
) -> IncidentOut:
    try:
        unit = registry.get_unit(session, body.unit_code)
    except NotFound as exc:
        raise field_problem("unit_code", "no such unit", "unit") from exc
    info = repo.transition(
        session, incident_id, IncidentState.DIVERTED, actor=actor_of(principal),
        unit_code=unit.code, note=body.note,
    )  # fmt: skip
    audit.record(session, principal, "incident.divert", "incident", incident_id,
                 detail={"unit": unit.code})  # fmt: skip
    publish(service, info)
    return _out(service, info)


@router.post("/{incident_id}/accept", response_model=IncidentOut, summary="The unit accepts")
def accept(
    incident_id: str,
    session: SessionDep,
    service: ServiceDep,
    principal: PrincipalDep,
    body: AcceptIn | None = None,
) -> IncidentOut:
    _may_handle(principal, repo.get_incident(session, incident_id))
    info = repo.transition(
        session, incident_id, IncidentState.ACCEPTED, actor=actor_of(principal),
        note=body.note if body else None,
    )  # fmt: skip
    audit.record(session, principal, "incident.accept", "incident", incident_id)
    publish(service, info)
    return _out(service, info)


@router.post("/{incident_id}/close", response_model=IncidentOut, summary="Close with feedback")
def close(
    incident_id: str,
    body: CloseIn,
    session: SessionDep,
    service: ServiceDep,
    principal: PrincipalDep,
) -> IncidentOut:
    _may_handle(principal, repo.get_incident(session, incident_id))
    now = utcnow()
    info = repo.transition(
        session, incident_id, IncidentState.CLOSED, actor=actor_of(principal), now=now,
        feedback=body.feedback.strip(),
    )  # fmt: skip
    audit.record(session, principal, "incident.close", "incident", incident_id)
    survey_id = None
    if body.survey:
        settings = service.settings
        survey_id = schedule_after_close(
            session, info, policy=settings.dial_policy, schedule=settings.survey_schedule(),
            closed_at=now,
        )  # fmt: skip
    publish(service, info)
    return _out(service, info, survey_id)
