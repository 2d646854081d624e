"""Units, their weekly rosters, dial lists and duty checks (the duty-phone registry)."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import Response

from api.auth import (
    AdminDep,
    DispatcherDep,
    PrincipalDep,
    SupervisorDep,
    ensure_unit_scope,
    take_dial_quota,
)
from api.deps import ServiceDep, SessionDep
from api.problems import Problem
from api.schemas.registry import (
    UNIT_CODE,
    DialEntryOut,
    DialListOut,
    DutyCheckOut,
    DutyCheckScheduled,
    RosterIn,
    RosterOut,
    RosterVersionOut,
    RosterWeekOut,
    UnitIn,
    UnitOut,
    UnitPatch,
    invalid_numbers,
    roster_values,
)
from calls.duty_check_job import caller_installed
from registry.duty import InvalidWeek, parse_week, unit_dial_list
from registry.numbers import DialPolicy, NumberError
from registry.roster_io import XLSX_TYPE, to_csv, to_xlsx, unit_template
from storage import audit
from storage import registry as repo
from storage.base import utcnow
from storage.models.auth import Role
from storage.models.registry import UnitKind
from telephony.privacy import mask_number

log = logging.getLogger(__name__)
router = APIRouter(prefix="/api/v1/units", tags=["duty registry"])

CodePath = Annotated[str, Path(pattern=UNIT_CODE, description="unit code, e.g. L01")]
WeekPath = Annotated[str, Path(description="ISO week in the county's zone, e.g. 2026-W49")]


def checked_week(week: str, field: str = "week") -> str:
    """The canonical ISO week, or a 422 problem naming the field."""
    try:
        return parse_week(week)
    except InvalidWeek as exc:
        err = {"field": field, "message": str(exc), "type": "iso_week"}
        raise Problem(422, "Invalid week", str(exc), kind="validation", errors=[err]) from exc


def display_number(number: str, policy: DialPolicy) -> str:
    """How people write a stored number (the stored form when it no longer parses)."""
    try:
        return policy.parse(number).display
    except NumberError:
        return number


def _may_read_unit(principal: PrincipalDep, code: str) -> None:
    if principal.role is Role.UNIT:
        ensure_unit_scope(principal, code)


@router.post("", response_model=UnitOut, status_code=201, summary="Add a unit (admin)")
def create_unit(
    body: UnitIn, session: SessionDep, service: ServiceDep, principal: AdminDep
) -> UnitOut:
    fallback = None
    if body.fallback_number:
        try:
            fallback = service.settings.dial_policy.check(
                body.fallback_number, field="fallback_number"
            ).canonical
        except NumberError as exc:
            raise invalid_numbers(
                [{"field": "fallback_number", "message": exc.reason, "type": "phone_number"}]
            ) from exc
    unit = repo.create_unit(
        session,
        code=body.code,
        name=body.name.strip(),
        kind=body.kind,
        fallback_number=fallback,
        active=body.active,
    )
    audit.record(session, principal, "unit.create", "unit", unit.code, detail={"name": unit.name})
    return UnitOut.of(unit)


@router.patch(
    "/{code}",
    response_model=UnitOut,
    summary="Edit or deactivate a unit (admin); a deactivated unit keeps its history",
)
def patch_unit(
    code: CodePath,
    body: UnitPatch,
    session: SessionDep,
    service: ServiceDep,
    principal: AdminDep,
) -> UnitOut:
    changes: dict[str, object] = {}
    for key in body.model_fields_set:
        value = getattr(body, key)
        if value is None and key != "fallback_number":
            err = {"field": key, "message": "may not be null", "type": "value_error"}
            raise Problem(422, "Invalid request", f"{key}: may not be null", kind="validation",
                          errors=[err])  # fmt: skip
        changes[key] = value
    if "name" in changes:
        changes["name"] = str(changes["name"]).strip()
    if changes.get("fallback_number"):
        try:
            changes["fallback_number"] = service.settings.dial_policy.check(
                str(changes["fallback_number"]), field="fallback_number"
            ).canonical
        except NumberError as exc:
            raise invalid_numbers(
                [{"field": "fallback_number", "message": exc.reason, "type": "phone_number"}]
            ) from exc
    elif "fallback_number" in changes:
        changes["fallback_number"] = None
    unit = repo.update_unit(session, code, changes)
    detail = {k: (v.value if isinstance(v, UnitKind) else v) for k, v in changes.items()}
    if "fallback_number" in detail:
        detail["fallback_number"] = (
            mask_number(unit.fallback_number) if unit.fallback_number else None
        )
    audit.record(session, principal, "unit.update", "unit", code, detail=detail)
    return UnitOut.of(unit)


@router.get("", response_model=list[UnitOut], summary="List units")
def list_units(
    session: SessionDep,
    _principal: DispatcherDep,
    kind: UnitKind | None = None,
    active_only: bool = False,
) -> list[UnitOut]:
    return [UnitOut.of(u) for u in repo.list_units(session, kind=kind, active_only=active_only)]


@router.get("/{code}", response_model=UnitOut, summary="One unit")
def get_unit(code: CodePath, session: SessionDep, principal: PrincipalDep) -> UnitOut:
    _may_read_unit(principal, code)
    return UnitOut.of(repo.get_unit(session, code))


@router.put(
    "/{code}/rosters/{week}",
    response_model=RosterOut,
    status_code=201,
    summary="Submit the unit's roster for a week (a new version)",
)
def put_roster(
    code: CodePath,
    week: WeekPath,
    body: RosterIn,
    session: SessionDep,
    service: ServiceDep,
    principal: PrincipalDep,
) -> RosterOut:
    ensure_unit_scope(principal, code)
    canonical = checked_week(week)
    repo.get_unit(session, code)  # 404 before validating numbers
    values = roster_values(body, service.settings.dial_policy)
    stored = repo.add_roster_version(session, code, canonical, values, submitted_by=principal.name)
    audit.record(
        session,
        principal,
        "roster.submit",
        "roster",
        f"{code}/{canonical}",
        detail={"version": stored.version, "staff": len(stored.staff)},
    )
    log.info(
        "roster %s %s v%d by %s (leader %s)",
        code,
        canonical,
        stored.version,
        principal.name,
        mask_number(stored.leader_phone),
    )
    return RosterOut(**RosterVersionOut.of(stored).model_dump())


@router.get(
    "/{code}/rosters",
    response_model=list[RosterWeekOut],
    summary="The weeks a unit reported for (the version that counts of each), newest first",
)
def list_roster_weeks(
    code: CodePath,
    session: SessionDep,
    principal: PrincipalDep,
    week: Annotated[list[str] | None, Query(description="only these ISO weeks")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 20,
) -> list[RosterWeekOut]:
    _may_read_unit(principal, code)
    weeks = [checked_week(w) for w in week] if week else None
    rows = repo.unit_roster_weeks(session, code, weeks=weeks, limit=limit)
    return [RosterWeekOut.of(r) for r in rows]


@router.get(
    "/{code}/rosters/{week}/template",
    summary="The unit's own sheet for a week (CSV or XLSX, the export's columns) to fill in",
    response_class=Response,
    responses={200: {"content": {"text/csv": {}, XLSX_TYPE: {}}}},
)
def roster_template(
    code: CodePath,
    week: WeekPath,
    session: SessionDep,
    principal: PrincipalDep,
    format: Annotated[Literal["csv", "xlsx"], Query()] = "xlsx",
) -> Response:
    _may_read_unit(principal, code)
    canonical = checked_week(week)
    rows = unit_template(session, code, canonical)
    headers = {"Content-Disposition": f'attachment; filename="roster-{code}-{canonical}.{format}"'}
    if format == "xlsx":
        return Response(to_xlsx(rows, canonical), media_type=XLSX_TYPE, headers=headers)
    return Response(to_csv(rows), media_type="text/csv; charset=utf-8", headers=headers)


@router.get(
    "/{code}/rosters/{week}", response_model=RosterOut, summary="The roster that counts for a week"
)
def get_roster(
    code: CodePath,
    week: WeekPath,
    session: SessionDep,
    principal: PrincipalDep,
    history: bool = False,
) -> RosterOut:
    _may_read_unit(principal, code)
    canonical = checked_week(week)
    versions = repo.roster_history(session, code, canonical)
    if not versions:
        raise Problem(
            404, "No roster", f"unit {code} has not reported for {canonical}", kind="not-found"
        )
    out = RosterOut(**RosterVersionOut.of(versions[-1]).model_dump())
    if history:
        out.history = [RosterVersionOut.of(v) for v in versions]
    return out


@router.get(
    "/{code}/dial-list",
    response_model=DialListOut,
    summary="Who to call for the unit at a time: staff on duty, the leader, the fallback",
)
def get_dial_list(
    code: CodePath,
    session: SessionDep,
    service: ServiceDep,
    _principal: DispatcherDep,
    at: Annotated[datetime | None, Query(description="ISO time; default now")] = None,
) -> DialListOut:
    when = at or utcnow()
    if when.tzinfo is None:
        when = when.replace(tzinfo=service.settings.zone)  # a wall-clock time in the county
    dial = unit_dial_list(session, code, when, service.settings.zone, service.settings.dial_policy)
    entries = [
        DialEntryOut(
            position=i,
            number=t.entry.number,
            display=t.display,
            role=t.entry.role,
            name=t.entry.name,
            order=t.entry.order,
            extension=t.extension,
        )
        for i, t in enumerate(dial.targets, start=1)
    ]
    return DialListOut(
        unit_code=code,
        at=when,
        week=dial.week,
        roster_version=dial.roster_version,
        entries=entries,
    )


@router.get(
    "/{code}/duty-checks", response_model=list[DutyCheckOut], summary="查岗 results, newest first"
)
def get_duty_checks(
    code: CodePath,
    session: SessionDep,
    principal: PrincipalDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[DutyCheckOut]:
    _may_read_unit(principal, code)
    return [DutyCheckOut.of(d) for d in repo.list_duty_checks(session, code, limit=limit)]


@router.post(
    "/{code}/duty-checks",
    response_model=DutyCheckScheduled,
    status_code=202,
    summary="Start a 查岗 call to the unit's on-duty phone now (result listed when done)",
)
def post_duty_check(
    code: CodePath,
    request: Request,
    session: SessionDep,
    service: ServiceDep,
    principal: SupervisorDep,
) -> DutyCheckScheduled:
    repo.get_unit(session, code)
    scheduler = service.scheduler
    if scheduler is None or not scheduler.health().ok or not caller_installed():
        raise Problem(
            503,
            "Duty checks unavailable",
            "the scheduler or the telephony caller is not running",
            kind="unavailable",
        )
    take_dial_quota(request, principal)
    job_id = scheduler.schedule_duty_check(code, utcnow())
    audit.record(session, principal, "duty_check.start", "unit", code, detail={"job": job_id})
    return DutyCheckScheduled(unit_code=code, job_id=job_id)
