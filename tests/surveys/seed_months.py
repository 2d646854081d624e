"""Surveys over three months for the trend and the breakdowns (by unit, type, dispatcher).

Beijing time. 2026-09: L01 utility (张调度) 3 satisfied + 1 unsatisfied (rework) = 75.0 %;
2026-10: L02 traffic (李调度) 1 satisfied + 1 basically satisfied = 50.0 %, 1 unreached;
2026-11: L01 traffic (张调度) 2 satisfied = 100.0 %, one of them finished 2026-10-31 16:30 UTC,
which is already 1 November in Beijing. August has none.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy.orm import Session, sessionmaker

from storage import incidents as incident_repo
from storage import surveys as survey_repo
from storage.engine import session_scope
from storage.models.incidents import IncidentCategory, IncidentState
from storage.models.registry import UnitKind
from storage.models.surveys import SurveyStatus
from storage.registry import create_unit

BJ = timedelta(hours=8)
PERIOD = (datetime(2026, 8, 1, tzinfo=UTC) - BJ, datetime(2026, 12, 1, tzinfo=UTC) - BJ)
SEPT = datetime(2026, 9, 15, 2, 0, tzinfo=UTC)
OCT = datetime(2026, 10, 15, 2, 0, tzinfo=UTC)
NOV_EDGE = datetime(2026, 10, 31, 16, 30, tzinfo=UTC)  # 2026-11-01 00:30 in Beijing
NOV = datetime(2026, 11, 10, 2, 0, tzinfo=UTC)

# (finished at, unit, type, dispatcher, answer or None for unreached, rework)
ROWS = [
    (SEPT, "L01", "utility", "张调度", "satisfied", False),
    (SEPT, "L01", "utility", "张调度", "satisfied", False),
    (SEPT, "L01", "utility", "张调度", "satisfied", False),
    (SEPT, "L01", "utility", "张调度", "unsatisfied", True),
    (OCT, "L02", "traffic", "李调度", "satisfied", False),
    (OCT, "L02", "traffic", "李调度", "basically_satisfied", False),
    (OCT, "L02", "traffic", "李调度", None, False),
    (NOV_EDGE, "L01", "traffic", "张调度", "satisfied", False),
    (NOV, "L01", "traffic", "张调度", "satisfied", False),
]


def seed_months(factory: sessionmaker[Session], *, units: bool = True) -> None:
    """Store the incidents and finished surveys of ROWS (and units L01, L02 unless present)."""
    with session_scope(factory) as s:
        if units:
            for code, name in (("L01", "县供电公司"), ("L02", "县交警大队")):
                create_unit(s, code=code, name=name, kind=UnitKind.LINKAGE, fallback_number=None)
        for i, (at, unit, type_, who, answer, rework) in enumerate(ROWS):
            actor = incident_repo.Actor(who, "dispatcher")
            inc = incident_repo.create_incident(
                s, reporter_number=f"+861380000{i:04d}", category=IncidentCategory.NON_POLICE,
                type=type_, summary="seeded", received_at=at - timedelta(days=1), actor=actor,
                now=at - timedelta(days=1),
            )  # fmt: skip
            incident_repo.transition(s, inc.id, IncidentState.DIVERTED, actor=actor,
                                     unit_code=unit, now=at - timedelta(hours=20))  # fmt: skip
            survey = survey_repo.create_survey(
                s, number=inc.reporter_number, first_attempt_at=at - timedelta(hours=1),
                incident_id=inc.id, now=at - timedelta(hours=2),
            )  # fmt: skip
            survey_repo.apply_outcome(
                s, survey.id,
                status=SurveyStatus.ANSWERED if answer else SurveyStatus.UNREACHED,
                now=at, reason="seeded", answer=answer, answered_at=at if answer else None,
                rework_reason="unsatisfied" if rework else None,
            )  # fmt: skip
