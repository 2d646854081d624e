"""Fixtures for survey tests: a session factory on a migrated database, a settable clock,
a scripted fake `SurveyCaller`."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy.orm import Session, sessionmaker

from callflows.ivr import CallOutcome, KeyPromptSettings
from calls.survey_job import SurveyCallResult
from storage.engine import make_engine, make_session_factory

SHANGHAI = ZoneInfo("Asia/Shanghai")


def local(y: int, mo: int, d: int, h: int, mi: int = 0, s: int = 0) -> datetime:
    """A county-local wall time as an aware datetime."""
    return datetime(y, mo, d, h, mi, s, tzinfo=SHANGHAI)


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def set(self, now: datetime) -> None:
        self.now = now


@dataclass
class FakeCaller:
    """Answers from a script: per number, a list of (outcome, key, digits), consumed in order.
    The script says what the IVR flow decided (a wrong key is `no_key` with its digits).

    Each call "lasts" `duration` on the test clock: it ends at clock() + duration.
    """

    clock: Clock
    script: dict[str, list[tuple[CallOutcome, str | None, str]]] = field(default_factory=dict)
    duration: timedelta = timedelta(seconds=30)
    calls: list[tuple[str, str, datetime]] = field(default_factory=list)
    concurrent: int = 0
    max_concurrent: int = 0

    async def call(
        self, survey_id: str, number: str, settings: KeyPromptSettings
    ) -> SurveyCallResult:
        started = self.clock()
        self.calls.append((survey_id, number, started))
        self.concurrent += 1
        self.max_concurrent = max(self.max_concurrent, self.concurrent)
        try:
            await asyncio.sleep(0.01)
            outcome, key, digits = self.script.get(number, [(CallOutcome.ANSWER, "1", "1")]).pop(0)
        finally:
            self.concurrent -= 1
        # as the IVR flow reports it: an accepted key comes with its meaning
        answer = settings.keys.get(key) if outcome is CallOutcome.ANSWER and key else None
        return SurveyCallResult(
            outcome, key, digits, started, started + self.duration, None, None, answer
        )


@pytest.fixture
def factory(migrated_url: str) -> Iterator[sessionmaker[Session]]:
    """Sessions on a migrated database (SQLite and PostgreSQL)."""
    engine = make_engine(migrated_url)
    try:
        yield make_session_factory(engine)
    finally:
        engine.dispose()
