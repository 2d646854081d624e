"""Creating callback surveys (回访): on request, and when an incident is closed.

These are the application rules the routers call: the number goes through the dial policy, the
first attempt falls inside the calling hours, and closing an incident schedules its reporter's
survey after the configured delay. The caller owns the session (and commits).
"""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy.orm import Session

from callflows.survey import SurveySchedule, first_attempt_at
from registry.numbers import DialPolicy, NumberError
from storage import surveys as survey_repo
from storage.incidents import IncidentInfo
from storage.surveys import SurveyInfo

log = logging.getLogger(__name__)


def schedule_survey(
    session: Session,
    *,
    number: str,
    policy: DialPolicy,
    schedule: SurveySchedule,
    created_by: str,
    now: datetime,
    incident_id: str | None = None,
    not_before: datetime | None = None,
) -> SurveyInfo:
    """A survey of `number` (NumberError, naming the field `number`, when the policy refuses it),
    first called at the next opening of the calling hours after `not_before` (default now)."""
    checked = policy.check(number, field="number")
    earliest = max(now, not_before) if not_before else now
    return survey_repo.create_survey(
        session,
        number=checked.canonical,
        incident_id=incident_id,
        not_before=earliest,
        first_attempt_at=schedule.hours.next_opening(earliest),
        created_by=created_by,
        now=now,
    )


def schedule_after_close(
    session: Session,
    incident: IncidentInfo,
    *,
    policy: DialPolicy,
    schedule: SurveySchedule,
    closed_at: datetime,
) -> str | None:
    """The callback survey of a closed incident's reporter; None (logged) when the reporter's
    number may not be dialled (a short number, abroad)."""
    try:
        policy.check(incident.reporter_number)
    except NumberError as exc:
        log.warning("incident %s: no callback survey, number refused: %s", incident.id, exc.reason)
        return None
    survey = survey_repo.create_survey(
        session,
        number=incident.reporter_number,
        incident_id=incident.id,
        first_attempt_at=first_attempt_at(closed_at, schedule),
        created_by="system:incident.close",
        now=closed_at,
    )
    return survey.id
