"""Rosters across units: who has not reported, bulk import and export (CSV / XLSX)."""

from __future__ import annotations

import logging
from typing import Annotated, Literal

from fastapi import APIRouter, File, Query, Request, UploadFile
from fastapi.responses import Response

from api.auth import DispatcherDep, PrincipalDep, SupervisorDep, take_dial_quota
from api.deps import ServiceDep, SessionDep
from api.problems import Problem
from api.routers.units import checked_week
from api.schemas.registry import (
    ImportResult,
    MissingOut,
    ReminderAttemptOut,
    ReminderRequest,
    ReminderRunOut,
    ReminderUnitOut,
    ReminderWeekOut,
    UnitOut,
)
from registry.duty import coming_week, week_of
from registry.reminder import call_units_missing_roster
from registry.roster_io import (
    XLSX_TYPE,
    SheetTooLarge,
    parse_sheet,
    read_table,
    roster_rows,
    to_csv,
    to_xlsx,
)
from storage import audit
from storage import registry as repo
from storage import reminders as reminder_repo
from storage.base import utcnow
from storage.models.auth import Role

log = logging.getLogger(__name__)
router = APIRouter(prefix="/api/v1/rosters", tags=["duty registry"])

MAX_UPLOAD = 5 * 1024 * 1024


@router.get("/missing", response_model=MissingOut, summary="Active units with no roster for a week")
def get_missing(
    session: SessionDep,
    service: ServiceDep,
    _principal: DispatcherDep,
    week: Annotated[str | None, Query(description="ISO week; default: the coming week")] = None,
) -> MissingOut:
    target = checked_week(week) if week else coming_week(utcnow(), service.settings.zone)
    return MissingOut(
        week=target, units=[UnitOut.of(u) for u in repo.units_missing_roster(session, target)]
    )


@router.post(
    "/reminders",
    response_model=ReminderRunOut,
    status_code=202,
    summary="Call every unit without a roster for the week now (inside the calling hours)",
)
def post_reminders(
    body: ReminderRequest, request: Request, session: SessionDep, principal: SupervisorDep
) -> ReminderRunOut:
    week = checked_week(body.week, "week")
    take_dial_quota(request, principal)  # one run, however many units it calls
    run = call_units_missing_roster(
        session, week, utcnow(), created_by=principal.name, only_new=False
    )
    audit.record(
        session, principal, "roster.remind", "week", week,
        detail={"run": run.id, "units": list(run.unit_codes)},
    )  # fmt: skip
    return ReminderRunOut(id=run.id, week=week, units=list(run.unit_codes))


@router.get(
    "/reminders",
    response_model=ReminderWeekOut,
    summary="Reminder calls about a week's missing rosters: each unit's outcome and attempts",
)
def get_reminders(
    session: SessionDep,
    service: ServiceDep,
    _principal: DispatcherDep,
    week: Annotated[str | None, Query(description="ISO week; default: the coming week")] = None,
) -> ReminderWeekOut:
    target = checked_week(week) if week else coming_week(utcnow(), service.settings.zone)
    units = [
        ReminderUnitOut(
            unit_code=r.unit_code,
            number=r.number,
            outcome=r.status.value,
            run_id=r.run_id,
            end_reason=r.end_reason,
            next_attempt_at=r.next_attempt_at,
            attempts=[
                ReminderAttemptOut(
                    attempt_no=a.attempt_no,
                    outcome=a.outcome,
                    key=a.key,
                    digits=a.digits,
                    sip_reason=a.sip_reason,
                    recording_id=a.recording_id,
                    started_at=a.started_at,
                    ended_at=a.ended_at,
                )
                for a in r.attempts
            ],
        )
        for r in reminder_repo.week_reminders(session, target)
    ]
    return ReminderWeekOut(week=target, units=units)


@router.post(
    "/import",
    response_model=ImportResult,
    status_code=201,
    summary="Import rosters from CSV or XLSX; all rows or none (admin: any unit; a unit token: "
    "its own unit's rows only)",
)
def import_rosters(
    file: Annotated[UploadFile, File(description="CSV (UTF-8) or XLSX, one row per person")],
    session: SessionDep,
    service: ServiceDep,
    principal: PrincipalDep,
) -> ImportResult:
    if principal.role not in (Role.ADMIN, Role.UNIT):
        raise Problem(
            403, "Forbidden", "this needs one of the roles: admin, unit", kind="forbidden"
        )
    only_unit = principal.unit_code if principal.role is Role.UNIT else None
    data = file.file.read(MAX_UPLOAD + 1)  # a worker thread: no SQL or file I/O on the loop
    if len(data) > MAX_UPLOAD:
        raise Problem(413, "Upload too large", f"at most {MAX_UPLOAD} bytes", kind="too-large")
    try:
        table = read_table(data)
    except SheetTooLarge as exc:
        raise Problem(413, "Sheet too large", str(exc), kind="too-large") from exc
    except Exception as exc:  # openpyxl/csv raise many kinds for a damaged upload
        raise Problem(
            422, "Unreadable sheet", f"not a CSV or XLSX file: {exc}", kind="validation"
        ) from exc
    known = {u.code for u in repo.list_units(session)}
    rosters, errors = parse_sheet(table, known, service.settings.dial_policy, only_unit=only_unit)
    if errors:
        raise Problem(
            422,
            "Import refused",
            f"{len(errors)} problem(s); nothing was imported",
            kind="validation",
            errors=[{"row": e.row, "field": e.field, "message": e.message} for e in errors],
        )
    stored = []
    for r in rosters:
        version = repo.add_roster_version(
            session, r.unit_code, r.week, r.values, submitted_by=principal.name
        )
        audit.record(
            session,
            principal,
            "roster.import",
            "roster",
            f"{r.unit_code}/{r.week}",
            detail={"version": version.version, "file": file.filename or ""},
        )
        stored.append(f"{r.unit_code}/{r.week}")
    log.info("imported %d roster(s) from %s", len(stored), file.filename)
    return ImportResult(imported=len(stored), rosters=stored)


@router.get(
    "/export",
    summary="The rosters that count for a week, as CSV or XLSX",
    response_class=Response,
    responses={200: {"content": {"text/csv": {}, XLSX_TYPE: {}}}},
)
def export_rosters(
    session: SessionDep,
    service: ServiceDep,
    _principal: DispatcherDep,
    week: Annotated[str | None, Query(description="ISO week; default: this week")] = None,
    format: Annotated[Literal["csv", "xlsx"], Query()] = "csv",
) -> Response:
    target = checked_week(week) if week else week_of(utcnow(), service.settings.zone)
    rows = roster_rows(repo.latest_rosters_for_week(session, target))
    filename = f"rosters-{target}.{format}"
    headers = {"Content-Disposition": f'attachment; filename="{filename}"'}
    if format == "xlsx":
        return Response(to_xlsx(rows, target), media_type=XLSX_TYPE, headers=headers)
    return Response(to_csv(rows), media_type="text/csv; charset=utf-8", headers=headers)
