"""The claimed-work runner (calls/claimed_work.py) on SQLite and PostgreSQL, over real rows
(the surveys' lease table): two runners racing for one due row call it once, a lease is
renewed while a long call runs, a lease left by a dead process expires and the row is
called again, a call that raises is stored, retries are bounded and end with a stored reason,
and a failed round shows in health."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Coroutine, Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy.orm import Session, sessionmaker

from api.settings import Settings
from callflows.ivr import KeyPromptSettings
from calls.claimed_work import ClaimedWorkComponent, ClaimedWorkRunner, Event
from calls.key_prompt_calls import KeyPromptCallResult
from calls.survey_job import SurveyDispatcher
from storage.attempts import settle
from storage.base import utcnow
from storage.engine import make_engine, make_session_factory, session_scope
from storage.models.surveys import SurveyStatus
from storage.surveys import SURVEYS
from tests.surveys.conftest import Clock, local
from tests.surveys.test_dispatcher import _get, _survey


@pytest.fixture
def factory(migrated_url: str) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(migrated_url)
    yield make_session_factory(engine)
    engine.dispose()


@dataclasses.dataclass(frozen=True)
class Claimed:
    id: str


@dataclasses.dataclass(frozen=True)
class Run:
    node: str
    lease_s: float = 60.0
    max_concurrent: int = 5
    poll_s: float = 1.0


class Calls:
    """Claimed work over the surveys' rows: each call waits for `gate` (or `hold_s`), then the
    row is stored answered with the calling node as its reason."""

    label = "test"

    def __init__(self, node: str, gate: asyncio.Event | None = None, hold_s: float = 0.0) -> None:
        self.node, self.gate, self.hold_s = node, gate, hold_s
        self.placed: list[str] = []
        self.renewals = 0

    def may_claim(self, now: datetime) -> bool:
        return True

    def claim(
        self, session: Session, *, now: datetime, lease: timedelta, limit: int
    ) -> list[Claimed]:
        rows = SURVEYS.claim_due(session, node=self.node, now=now, lease=lease, limit=limit)
        return [Claimed(r.id) for r in rows]

    def renew(self, session: Session, item: Claimed, until: datetime) -> None:
        self.renewals += SURVEYS.renew(session, node=self.node, ids=[item.id], until=until)

    def place(self, item: Claimed) -> Coroutine[Any, Any, str]:
        self.placed.append(item.id)
        return self._call()

    async def _call(self) -> str:
        if self.gate is not None:
            await self.gate.wait()
        await asyncio.sleep(self.hold_s)
        return f"answered by {self.node}"

    def failed(self, item: Claimed, exc: Exception, started: datetime) -> str:
        return f"failed: {type(exc).__name__}"

    def interrupted(self, item: Claimed, started: datetime) -> str:
        return "interrupted"

    def store(self, session: Session, item: Claimed, result: str) -> Event | None:
        status = SurveyStatus.ANSWERED if result.startswith("answered") else SurveyStatus.UNREACHED
        settle(session, SURVEYS, item.id, status=status, now=utcnow(), reason=result)
        return "test.stored", {"id": item.id, "reason": result}


def _due(factory: sessionmaker[Session], due: datetime | None = None) -> str:
    return _survey(factory, due or utcnow() - timedelta(seconds=1))


async def test_two_runners_racing_for_one_due_row_call_it_once(
    factory: sessionmaker[Session],
) -> None:
    sid = _due(factory)
    gate = asyncio.Event()
    published: list[tuple[str, dict[str, Any]]] = []
    works = [Calls(n, gate) for n in ("node-a", "node-b")]
    runners = [
        ClaimedWorkRunner(factory, w, Run(w.node), publish=lambda t, d: published.append((t, d)))
        for w in works
    ]
    started = await asyncio.gather(*(r.tick() for r in runners))
    assert sorted(started) == [0, 1] and sum(r.in_flight for r in runners) == 1
    assert sum(await asyncio.gather(*(r.tick() for r in runners))) == 0  # in flight: not again
    gate.set()
    for r in runners:
        await r.drain()
    (caller,) = [w for w in works if w.placed]
    assert caller.placed == [sid]
    row = _get(factory, sid)
    assert (row.status, row.end_reason) == (SurveyStatus.ANSWERED, f"answered by {caller.node}")
    assert published == [("test.stored", {"id": sid, "reason": f"answered by {caller.node}"})]


async def test_a_call_longer_than_the_lease_keeps_it_renewed(
    factory: sessionmaker[Session],
) -> None:
    sid = _due(factory)
    long_call = Calls("node-a", hold_s=1.2)
    other = Calls("node-b")
    first = ClaimedWorkRunner(factory, long_call, Run("node-a", lease_s=0.6))
    second = ClaimedWorkRunner(factory, other, Run("node-b", lease_s=0.6))
    assert await first.tick() == 1
    for _ in range(4):  # well past the first lease: node-a renews every 0.2 s
        await asyncio.sleep(0.25)
        assert await second.tick() == 0
    await first.drain()
    assert long_call.renewals >= 3 and other.placed == []
    assert _get(factory, sid).end_reason == "answered by node-a"


async def test_a_lease_left_by_a_dead_process_expires_and_the_row_is_called_again(
    factory: sessionmaker[Session],
) -> None:
    sid = _due(factory)
    with session_scope(factory) as s:  # node-a claimed the row, then its process died
        (row,) = SURVEYS.claim_due(
            s, node="node-a", now=utcnow(), lease=timedelta(seconds=60), limit=1
        )
        assert row.id == sid
    assert _get(factory, sid).status is SurveyStatus.CALLING
    survivor = Calls("node-b")
    second = ClaimedWorkRunner(factory, survivor, Run("node-b"))
    assert await second.run_once() == 0  # the lease is live: not claimed
    later = Clock(utcnow() + timedelta(seconds=61))
    second = ClaimedWorkRunner(factory, survivor, Run("node-b"), clock=later)
    assert await second.run_once() == 1
    assert survivor.placed == [sid] and _get(factory, sid).end_reason == "answered by node-b"


async def test_a_call_that_raises_is_stored_through_failed(factory: sessionmaker[Session]) -> None:
    sid = _due(factory)

    class Raising(Calls):
        async def _call(self) -> str:
            raise ConnectionResetError("boom")

    runner = ClaimedWorkRunner(factory, Raising("node-a"), Run("node-a"))
    assert await runner.run_once() == 1
    row = _get(factory, sid)
    assert (row.status, row.end_reason) == (SurveyStatus.UNREACHED, "failed: ConnectionResetError")


async def test_retries_are_bounded_and_end_with_a_stored_reason(
    factory: sessionmaker[Session],
) -> None:
    settings = dataclasses.replace(
        Settings(survey_hours="08:30-21:00", survey_max_attempts=2,
                 survey_retry_failed_s=600).survey_run_settings(),
        node="node-a",
    )  # fmt: skip
    clock = Clock(local(2026, 12, 1, 10, 0))
    calls: list[str] = []

    class Broken:
        async def call(
            self, survey_id: str, number: str, settings: KeyPromptSettings
        ) -> KeyPromptCallResult:
            calls.append(survey_id)
            raise OSError("network unreachable")

    sid = _due(factory, clock())
    dispatcher = SurveyDispatcher(factory, Broken(), settings, clock=clock)
    for minutes in (0, 10, 20, 30, 60):
        clock.set(local(2026, 12, 1, 10, 0) + timedelta(minutes=minutes))
        await dispatcher.run_once()
    row = _get(factory, sid)
    assert calls == [sid, sid]  # two attempts, then never again
    assert (row.status, row.end_reason, row.next_attempt_at) == (
        SurveyStatus.UNREACHED, "last_attempt:failed", None,
    )  # fmt: skip
    assert [(a.outcome, a.sip_reason) for a in row.attempt_log] == [("failed", "OSError")] * 2
    assert row.attempt_log[1].started_at - row.attempt_log[0].ended_at == timedelta(minutes=10)


class Component(ClaimedWorkComponent):
    name = "test"
    job_id = "test.dispatch"
    job_name = "test job"
    failure = "test dispatch failed"
    log = logging.getLogger("tests.claimed_work")


async def test_a_failed_round_shows_in_health_and_the_next_one_clears_it(
    factory: sessionmaker[Session],
) -> None:
    class Flaky(Calls):
        fail = True

        def claim(self, session: Session, *, now: datetime, lease: timedelta,
                  limit: int) -> list[Claimed]:  # fmt: skip
            if self.fail:
                raise ConnectionRefusedError("database restarting")
            return super().claim(session, now=now, lease=lease, limit=limit)

    work = Flaky("node-a")
    component = Component(ClaimedWorkRunner(factory, work, Run("node-a", poll_s=7)))
    jobs: list[dict[str, Any]] = []
    component.register(lambda fn, **kw: jobs.append(kw))
    assert jobs == [{"seconds": 7, "job_id": "test.dispatch", "name": "test job"}]
    await component.tick()
    assert component.health().ok is False
    assert "ConnectionRefusedError: database restarting" in component.health().detail
    work.fail = False
    await component.tick()
    assert component.health().ok is True
    assert component.describe() == {"node": "node-a", "poll_s": 7}
