"""Callback surveys (回访): schedule one, read them, satisfaction statistics (CSV too).

Dispatchers, supervisors and admins schedule and read surveys; statistics are for
supervisors and admins. The dispatcher job (calls/survey_job.py) places the calls.
"""

from __future__ import annotations

import logging
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from pydantic import AwareDatetime

from api.auth import DispatcherDep, SupervisorDep, take_dial_quota
from api.deps import OffsetQuery, ServiceDep, SessionDep
from api.problems import Problem
from api.schemas.surveys import (
    GROUPS,
    SurveyIn,
    SurveyOut,
    SurveyStats,
    stats_csv,
    stats_table,
    summarise,
    table_csv,
    table_xlsx,
)
from calls.survey_scheduling import schedule_survey
from registry.numbers import NumberError
from registry.roster_io import XLSX_TYPE
from storage import audit
from storage import surveys as repo
from storage.base import utcnow
from storage.models.incidents import IncidentCategory
from storage.models.surveys import SurveyStatus
from telephony.privacy import mask_number

log = logging.getLogger(__name__)
router = APIRouter(prefix="/api/v1/surveys", tags=["callback surveys"])


@router.post("", response_model=SurveyOut, status_code=201, summary="Schedule a survey")
def create_survey(
    body: SurveyIn,
    request: Request,
    session: SessionDep,
    service: ServiceDep,
    principal: DispatcherDep,
) -> SurveyOut:
    settings = service.settings
    if body.not_before is not None and body.not_before.tzinfo is None:
        err = {"field": "not_before", "message": "give a time zone offset", "type": "datetime"}
        raise Problem(422, "Invalid request", "not_before: naive", kind="validation", errors=[err])
    take_dial_quota(request, principal)
    try:
        info = schedule_survey(
            session, number=body.number, policy=settings.dial_policy,
            schedule=settings.survey_schedule(), created_by=principal.name, now=utcnow(),
            incident_id=body.incident_id, not_before=body.not_before,
        )  # fmt: skip
    except NumberError as exc:
        err = {"field": "number", "message": exc.reason, "type": "phone_number"}
        raise Problem(
            422, "Invalid request", f"number: {exc.reason}", kind="validation", errors=[err]
        ) from exc
    audit.record(session, principal, "survey.create", "survey", info.id)
    log.info("survey %s scheduled for %s by %s", info.id, mask_number(info.number), principal.name)
    return SurveyOut.of(info)


@router.get("", response_model=list[SurveyOut], summary="List surveys (created in [from, to))")
def list_surveys(
    session: SessionDep,
    _principal: DispatcherDep,
    status: SurveyStatus | None = None,
    from_: Annotated[AwareDatetime | None, Query(alias="from")] = None,
    to: AwareDatetime | None = None,
    incident_id: Annotated[str | None, Query(max_length=32)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: OffsetQuery = 0,
) -> list[SurveyOut]:
    rows = repo.list_surveys(
        session, status=status, created_from=from_, created_to=to, incident_id=incident_id,
        limit=limit, offset=offset,
    )  # fmt: skip
    return [SurveyOut.of(s) for s in rows]


@router.get(
    "/stats",
    response_model=SurveyStats,
    summary="Satisfaction statistics of surveys finished in [from, to): total, by unit, "
    "category, incident type, dispatcher and month; CSV or XLSX of one breakdown",
    responses={200: {"content": {"text/csv": {}, XLSX_TYPE: {}}}},
)
def stats(
    session: SessionDep,
    service: ServiceDep,
    _principal: SupervisorDep,
    from_: Annotated[AwareDatetime | None, Query(alias="from")] = None,
    to: AwareDatetime | None = None,
    unit: Annotated[str | None, Query(max_length=40)] = None,
    category: IncidentCategory | None = None,
    format: Literal["json", "csv", "xlsx"] = "json",
    group: Annotated[
        Literal["unit", "type", "month", "dispatcher", "category"] | None,
        Query(
            description="the breakdown a CSV/XLSX export holds (CSV without it: total, units "
            "and categories as before)"
        ),
    ] = None,
) -> SurveyStats | Response:
    settings = service.settings
    answers = list(dict.fromkeys(settings.survey_ivr().keys.values()))
    cells = repo.finished_facts(
        session, finished_from=from_, finished_to=to, unit_code=unit, category=category
    )
    result = summarise(
        cells, answers, period_from=from_, period_to=to, unit=unit, category=category,
        zone=settings.zone,
    )  # fmt: skip
    if format == "json":
        return result
    if format == "csv" and group is None:
        return Response(
            stats_csv(result, answers),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": 'attachment; filename="survey-stats.csv"'},
        )
    breakdown = group or "unit"
    assert breakdown in GROUPS
    rows = stats_table(result, answers, breakdown)
    name = f"survey-stats-{breakdown}.{format}"
    headers = {"Content-Disposition": f'attachment; filename="{name}"'}
    if format == "xlsx":
        return Response(
            table_xlsx(rows, f"满意度-{breakdown}"), media_type=XLSX_TYPE, headers=headers
        )
    return Response(table_csv(rows), media_type="text/csv; charset=utf-8", headers=headers)


@router.get("/{survey_id}", response_model=SurveyOut, summary="One survey with its attempts")
def get_survey(survey_id: str, session: SessionDep, _principal: DispatcherDep) -> SurveyOut:
    return SurveyOut.of(repo.get_survey(session, survey_id))


@router.post("/{survey_id}/cancel", response_model=SurveyOut, summary="Cancel a pending survey")
def cancel_survey(survey_id: str, session: SessionDep, principal: DispatcherDep) -> SurveyOut:
    info = repo.cancel_survey(session, survey_id)
    audit.record(session, principal, "survey.cancel", "survey", survey_id)
    return SurveyOut.of(info)
