"""Stopping the claimed-work runner (calls/claimed_work.py) on SQLite and PostgreSQL: a call in
flight is cancelled, not left running behind the stopped runner; its row stores why it ended
(an interrupted attempt, an interrupted planned check) and its lease is released, so another
node calls the number again without waiting for the lease to expire. A call that ignores its
cancellation does not hold the shutdown past the bound."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Iterator

import pytest
from sqlalchemy.orm import Session, sessionmaker

from api.settings import Settings
from callflows.ivr import KeyPromptSettings
from calls.claimed_work import INTERRUPTED, ClaimedWorkRunner
from calls.duty_check_job import DutyCheckCallResult
from calls.key_prompt_calls import KeyPromptCallResult
from calls.survey_job import SurveyDispatcher
from storage import registry as registry_repo
from storage.engine import make_engine, make_session_factory, session_scope
from storage.models.reminders import PlannedDutyCheck, PlanStatus
from storage.models.surveys import Survey, SurveyStatus
from tests.calls.test_claimed_work import Calls, Run, _due
from tests.registry.test_duty_check_schedule import _planner, _plans, _units
from tests.surveys.conftest import Clock, FakeCaller, local
from tests.surveys.test_dispatcher import _get, _survey

SETTINGS = dataclasses.replace(
    Settings(survey_hours="08:30-21:00", survey_max_attempts=3,
             survey_retry_failed_s=600).survey_run_settings(),
    node="node-a",
)  # fmt: skip


@pytest.fixture
def factory(migrated_url: str) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(migrated_url)
    yield make_session_factory(engine)
    engine.dispose()


class Hanging:
    """A call that never ends by itself (the peer neither answers nor hangs up). It notes its
    cancellation; a `stubborn` one then keeps running until `release` is set."""

    def __init__(self, *, stubborn: bool = False) -> None:
        self.started = asyncio.Event()
        self.cancelled = asyncio.Event()
        self.release = asyncio.Event()
        self.stubborn = stubborn

    async def hang(self) -> None:
        self.started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            self.cancelled.set()
            if self.stubborn:
                await self.release.wait()
            raise


class HangingSurveyCall(Hanging):
    async def call(
        self, survey_id: str, number: str, settings: KeyPromptSettings
    ) -> KeyPromptCallResult:
        await self.hang()
        raise AssertionError("not reached")


class HangingDutyCheckCall(Hanging):
    async def call(self, number: str, *, timeout_s: float) -> DutyCheckCallResult:
        await self.hang()
        raise AssertionError("not reached")


def _lease(factory: sessionmaker[Session], model: type[Survey | PlannedDutyCheck],
           row_id: str) -> tuple[str | None, object]:  # fmt: skip
    with session_scope(factory) as s:
        row = s.get(model, row_id)
        assert row is not None
        return row.claimed_by, row.claimed_until


async def test_stopping_cancels_a_survey_call_stores_it_interrupted_and_frees_the_number(
    factory: sessionmaker[Session],
) -> None:
    clock = Clock(local(2026, 12, 1, 10, 0))
    sid = _survey(factory, clock())
    caller = HangingSurveyCall()
    dispatcher = SurveyDispatcher(factory, caller, SETTINGS, clock=clock)
    assert await dispatcher.tick() == 1
    await asyncio.wait_for(caller.started.wait(), 5)

    began = time.monotonic()
    await asyncio.wait_for(dispatcher.cancel_all(), 5)  # the service stops
    assert time.monotonic() - began < 2
    assert caller.cancelled.is_set() and dispatcher.in_flight == 0
    row = _get(factory, sid)
    assert [(a.node, a.outcome, a.sip_reason) for a in row.attempt_log] == [
        ("node-a", "failed", INTERRUPTED)
    ]
    assert (row.status, row.next_attempt_at) == (
        SurveyStatus.PENDING, local(2026, 12, 1, 10, 0),  # due at once: not the person's attempt
    )  # fmt: skip
    assert _lease(factory, Survey, sid) == (None, None)
    _survey(factory, clock(), number="+8613900001111")
    assert await dispatcher.tick() == 0  # a stopped runner places no new call

    clock.set(local(2026, 12, 1, 10, 10))  # another node calls the number at the retry time
    other = SurveyDispatcher(
        factory, FakeCaller(clock), dataclasses.replace(SETTINGS, node="node-b"), clock=clock
    )
    assert await other.run_once() == 2
    row = _get(factory, sid)
    assert row.status is SurveyStatus.ANSWERED
    assert [a.node for a in row.attempt_log] == ["node-a", "node-b"]


async def test_stopping_cancels_a_planned_duty_check_and_stores_why_it_failed(
    factory: sessionmaker[Session],
) -> None:
    _units(factory, 1)
    clock = Clock(local(2026, 12, 2, 1, 59, 59))
    caller = HangingDutyCheckCall()
    planner = _planner(factory, clock, caller, "daily 02:00")  # type: ignore[arg-type]
    await planner.tick()
    clock.set(local(2026, 12, 2, 2, 0))
    assert await planner.tick() == 1
    await asyncio.wait_for(caller.started.wait(), 5)

    await asyncio.wait_for(planner.cancel_all(), 5)
    assert caller.cancelled.is_set() and planner.in_flight == 0
    (plan,) = [p for p in _plans(factory) if p.due_at == local(2026, 12, 2, 2, 0)]
    assert (plan.status, plan.detail, plan.check_id) == (PlanStatus.FAILED, INTERRUPTED, None)
    assert _lease(factory, PlannedDutyCheck, plan.id) == (None, None)
    with session_scope(factory) as s:  # the unit is not marked failed for our shutdown
        assert registry_repo.list_duty_checks(s, "U00") == []


async def test_a_runner_task_cancelled_on_its_own_takes_its_call_with_it(
    factory: sessionmaker[Session],
) -> None:
    sid = _due(factory)
    hanging = Hanging()

    class Work(Calls):
        async def _call(self) -> str:
            await hanging.hang()
            raise AssertionError("not reached")

    runner = ClaimedWorkRunner(factory, Work("node-a"), Run("node-a"))
    assert await runner.tick() == 1
    await asyncio.wait_for(hanging.started.wait(), 5)
    (task,) = [t for t in asyncio.all_tasks() if t.get_name() == f"test-{sid}"]
    task.cancel()  # as the event loop does to its remaining tasks when it closes
    await asyncio.wait({task}, timeout=5)
    assert task.cancelled() and hanging.cancelled.is_set()
    row = _get(factory, sid)
    assert (row.status, row.end_reason) == (SurveyStatus.UNREACHED, "interrupted")
    assert _lease(factory, Survey, sid) == (None, None)


async def test_a_call_that_ignores_its_cancellation_does_not_hold_the_shutdown(
    factory: sessionmaker[Session], caplog: pytest.LogCaptureFixture
) -> None:
    sid = _due(factory)
    hanging = Hanging(stubborn=True)

    class Work(Calls):
        async def _call(self) -> str:
            await hanging.hang()
            raise AssertionError("not reached")

    runner = ClaimedWorkRunner(factory, Work("node-a"), Run("node-a"), stop_s=0.3)
    assert await runner.tick() == 1
    await asyncio.wait_for(hanging.started.wait(), 5)
    began = time.monotonic()
    with caplog.at_level(logging.ERROR, logger="calls.claimed_work"):
        await asyncio.wait_for(runner.cancel_all(), 5)
    assert 0.3 <= time.monotonic() - began < 2
    assert runner.in_flight == 0
    assert "did not end within" in caplog.text
    row = _get(factory, sid)
    assert (row.status, row.end_reason) == (SurveyStatus.UNREACHED, "interrupted")
    assert _lease(factory, Survey, sid) == (None, None)
    hanging.release.set()  # let the stubborn call end before the test's loop closes
    await asyncio.sleep(0.05)
