"""查岗 results across units for the supervisor: the checks of a period and a per-unit summary."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query

from api.auth import DispatcherDep
from api.deps import SessionDep
from api.schemas.registry import DutyCheckReport
from storage import registry as repo

router = APIRouter(prefix="/api/v1/duty-checks", tags=["duty registry"])


@router.get(
    "",
    response_model=DutyCheckReport,
    summary="Duty checks started in [from, to), newest first, with checks/passed/failed per unit",
)
def list_duty_checks(
    session: SessionDep,
    _principal: DispatcherDep,
    from_: Annotated[datetime | None, Query(alias="from")] = None,
    to: datetime | None = None,
    unit: Annotated[str | None, Query(max_length=40)] = None,
    limit: Annotated[int, Query(ge=1, le=5000)] = 1000,
) -> DutyCheckReport:
    records = repo.duty_checks_between(
        session, started_from=from_, started_to=to, unit_code=unit, limit=limit
    )
    return DutyCheckReport.of(records)
