"""查岗 results across units: the checks of a period, a per-unit summary, the scheduled ones."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query

from api.auth import DispatcherDep
from api.deps import ServiceDep, SessionDep
from api.problems import Problem
from api.schemas.registry import (
    UNIT_CODE,
    DutyCheckOut,
    DutyCheckReport,
    DutyCheckUnitSummary,
    PlannedDutyCheckOut,
)
from registry.duty_report import duty_check_report

router = APIRouter(prefix="/api/v1/duty-checks", tags=["duty registry"])


@router.get(
    "",
    response_model=DutyCheckReport,
    summary="Duty checks started in [from, to), newest first, with checks/passed/failed per unit "
    "and the scheduled checks due in the period",
)
def list_duty_checks(
    session: SessionDep,
    service: ServiceDep,
    _principal: DispatcherDep,
    from_: Annotated[
        datetime | None, Query(alias="from", description="ISO time; no offset = county time")
    ] = None,
    to: Annotated[datetime | None, Query(description="exclusive; no offset = county time")] = None,
    unit: Annotated[str | None, Query(pattern=UNIT_CODE, description="one unit's code")] = None,
    limit: Annotated[int, Query(ge=1, le=5000)] = 1000,
) -> DutyCheckReport:
    zone = service.settings.zone
    start = from_.replace(tzinfo=zone) if from_ and from_.tzinfo is None else from_
    end = to.replace(tzinfo=zone) if to and to.tzinfo is None else to
    if start is not None and end is not None and end <= start:
        err = {"field": "to", "message": "must be after from", "type": "range"}
        raise Problem(
            422, "Invalid period", "to must be after from", kind="validation", errors=[err]
        )
    report = duty_check_report(
        session, started_from=start, started_to=end, unit_code=unit, limit=limit
    )
    return DutyCheckReport(
        from_=start,
        to=end,
        unit=unit,
        checks=[DutyCheckOut.of(c) for c in report.checks],
        summary=[
            DutyCheckUnitSummary(
                unit_code=s.unit_code, checks=s.checks, passed=s.passed, failed=s.failed
            )
            for s in report.summary
        ],
        planned=[
            PlannedDutyCheckOut(
                id=p.id,
                unit_code=p.unit_code,
                due_at=p.due_at,
                rule=p.rule,
                status=p.status.value,
                check_id=p.check_id,
                detail=p.detail,
            )
            for p in report.planned
        ],
    )
