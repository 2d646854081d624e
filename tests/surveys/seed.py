"""Seeded survey outcomes: the article's 2017 figures spread over two units and police matters.

Jan–Nov 2017: 8,520 effective callbacks, 7,031 "satisfied", 11 "unsatisfied" (DOMAIN.md).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import insert
from sqlalchemy.orm import Session, sessionmaker

from storage.base import new_id
from storage.engine import session_scope
from storage.models.incidents import Incident, IncidentCategory, IncidentState
from storage.models.surveys import Survey, SurveyStatus

ZONE = ZoneInfo("Asia/Shanghai")
PERIOD = (datetime(2017, 1, 1, tzinfo=ZONE), datetime(2017, 12, 1, tzinfo=ZONE))

# (unit, category) -> {outcome: count}; outcome is an answer or a status
SEED: dict[tuple[str | None, IncidentCategory], dict[str, int]] = {
    ("L01", IncidentCategory.NON_POLICE): {
        "satisfied": 4000, "basically_satisfied": 900, "unsatisfied": 6, "unreached": 200,
    },
    ("T01", IncidentCategory.NON_POLICE): {
        "satisfied": 2000, "basically_satisfied": 400, "unsatisfied": 5, "unreached": 100,
    },
    (None, IncidentCategory.POLICE): {
        "satisfied": 1031, "basically_satisfied": 178, "unreached": 50, "cancelled": 3,
    },
}  # fmt: skip
KEYS = {"satisfied": "1", "basically_satisfied": "2", "unsatisfied": "3"}


def seed(factory: sessionmaker[Session]) -> None:
    """Insert the seeded surveys, plus some outside the period and some still pending."""
    start, end = PERIOD
    span = (end - start).total_seconds()
    with session_scope(factory) as s:
        rows: list[dict[str, Any]] = []
        for (unit, category), outcomes in SEED.items():
            inc = _incident(s, unit, category, start)
            n = 0
            for outcome, count in outcomes.items():
                for _ in range(count):
                    at = start + timedelta(seconds=span * n / 10_000)
                    rows.append(_survey(inc, outcome, at))
                    n += 1
            rows.append(_survey(inc, "satisfied", end + timedelta(days=3)))  # December
            rows.append(_survey(inc, "unsatisfied", start - timedelta(minutes=1)))  # 2016
            rows.append(_survey(inc, "pending", start + timedelta(days=30)))
        s.execute(insert(Survey), rows)


def _incident(s: Session, unit: str | None, category: IncidentCategory, at: datetime) -> str:
    row = Incident(
        reporter_number="+8613812345678", category=category, type="help", summary="seed",
        received_at=at, state=IncidentState.SURVEYED, unit_code=unit, created_by="seed",
    )  # fmt: skip
    s.add(row)
    s.flush()
    return row.id


def _survey(incident_id: str, outcome: str, at: datetime) -> dict[str, Any]:
    row: dict[str, Any] = {
        "id": new_id(), "number": "+8613812345678", "incident_id": incident_id,
        "not_before": at, "created_at": at, "created_by": "seed", "attempts": 1,
    }  # fmt: skip
    if outcome in KEYS:
        row |= {"status": SurveyStatus.ANSWERED, "answer": outcome, "answer_key": KEYS[outcome],
                "answered_at": at, "finished_at": at}  # fmt: skip
    elif outcome == "pending":
        row |= {"status": SurveyStatus.PENDING, "next_attempt_at": at, "attempts": 0}
    else:
        row |= {"status": SurveyStatus(outcome), "finished_at": at}
    return row
