"""Roster reminder calls with a scripted caller and a hand-moved clock, on SQLite and
PostgreSQL: who is called, key 1 acknowledged, retries like surveys, two nodes never call a
unit twice, one roster.missing event per unit and week."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from api.settings import Settings
from callflows.ivr import CallOutcome, KeyPromptSettings
from calls.reminder_job import ReminderDispatcher
from calls.survey_job import SurveyCallResult
from registry.reminder import call_units_missing_roster, remind_missing_rosters
from storage import registry as repo
from storage import reminders as reminder_repo
from storage import webhooks
from storage.engine import make_engine, make_session_factory, session_scope
from storage.models.registry import UnitKind
from storage.models.reminders import ReminderStatus, RosterReminderCall
from storage.registry import RosterValues, StaffEntry
from tests.surveys.conftest import Clock, local

SETTINGS = dataclasses.replace(
    Settings(
        survey_hours="08:30-21:00", survey_max_attempts=3, survey_retry_no_answer_s=1800,
        survey_retry_no_key_s=3600, survey_backoff=2.0,
    ).survey_run_settings(),
    node="node-a",
)  # fmt: skip
WEEK = "2026-W50"
SH = ZoneInfo("Asia/Shanghai")
LEADER = "+8613900000001"


@pytest.fixture
def factory(migrated_url: str) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(migrated_url)
    yield make_session_factory(engine)
    engine.dispose()


@dataclass
class ScriptedCaller:
    """Per number a list of (outcome, key); each call lasts 30 s on the test clock. `gate`
    holds every call until set (to keep calls in flight)."""

    clock: Clock
    script: dict[str, list[tuple[CallOutcome, str | None]]] = field(default_factory=dict)
    calls: list[tuple[str, str]] = field(default_factory=list)
    gate: asyncio.Event | None = None

    async def call(
        self, reminder_id: str, unit_code: str, number: str, settings: KeyPromptSettings
    ) -> SurveyCallResult:
        started = self.clock()
        self.calls.append((unit_code, number))
        if self.gate is not None:
            await self.gate.wait()
        await asyncio.sleep(0.01)
        outcome, key = self.script.get(number, [(CallOutcome.ANSWER, "1")]).pop(0)
        answer = settings.keys.get(key) if key else None
        return SurveyCallResult(
            outcome, key, key or "", started, started + timedelta(seconds=30), None, None, answer
        )


def _units(factory: sessionmaker[Session]) -> None:
    roster = RosterValues("王局长", LEADER, (StaffEntry("张三", "+8613800000001", 1),), None)
    with session_scope(factory) as s:
        for code, fallback in (("A", "+868334210001"), ("B", "+868334210002"), ("C", None),
                               ("D", "+868334210004")):  # fmt: skip
            repo.create_unit(s, code=code, name=f"单位{code}", kind=UnitKind.LINKAGE,
                             fallback_number=fallback)  # fmt: skip
        repo.add_roster_version(s, "A", "2026-W48", roster, submitted_by="A")
        repo.add_roster_version(s, "A", "2026-W49", roster, submitted_by="A")  # its latest
        repo.add_roster_version(s, "D", WEEK, roster, submitted_by="D")  # reported: not called


def _week(factory: sessionmaker[Session]) -> dict[str, reminder_repo.ReminderInfo]:
    with session_scope(factory) as s:
        return {r.unit_code: r for r in reminder_repo.week_reminders(s, WEEK)}


async def test_units_without_a_roster_are_called_until_acknowledged_or_out_of_attempts(
    factory: sessionmaker[Session],
) -> None:
    _units(factory)
    clock = Clock(local(2026, 12, 4, 15, 0))  # Friday 15:00, inside the calling hours
    caller = ScriptedCaller(clock, {
        LEADER: [(CallOutcome.NO_ANSWER, None), (CallOutcome.ANSWER, "1")],
        "+868334210002": [(CallOutcome.NO_ANSWER, None)] * 3,
    })  # fmt: skip
    with session_scope(factory) as s:
        run = call_units_missing_roster(s, WEEK, clock(), created_by="sup", only_new=False)
    assert run.unit_codes == ("A", "B", "C")
    before = _week(factory)
    assert {c: (r.number, r.status.value) for c, r in before.items()} == {
        "A": (LEADER, "pending"),  # the leader of its latest roster
        "B": ("+868334210002", "pending"),  # no roster ever: the fallback
        "C": ("", "failed"),  # nothing to call: shown failed at once
    }
    assert before["C"].end_reason == "no_number"

    dispatcher = ReminderDispatcher(factory, caller, SETTINGS, clock=clock)
    assert await dispatcher.tick() == 2
    await dispatcher.drain()
    first = _week(factory)
    assert first["A"].status is ReminderStatus.PENDING
    # retried like a survey: 30 min after the call ended (15:00:30)
    assert first["A"].next_attempt_at == local(2026, 12, 4, 15, 30, 30)

    for at in (local(2026, 12, 4, 15, 30, 30), local(2026, 12, 4, 16, 31, 0)):
        clock.set(at)
        await dispatcher.tick()
        await dispatcher.drain()
    done = _week(factory)
    assert done["A"].status is ReminderStatus.ACKNOWLEDGED
    assert [(a.outcome, a.key) for a in done["A"].attempts] == [("no_answer", None),
                                                                  ("answer", "1")]  # fmt: skip
    assert done["B"].status is ReminderStatus.NO_ANSWER
    assert [a.outcome for a in done["B"].attempts] == ["no_answer"] * 3
    assert caller.calls.count(("A", LEADER)) == 2 and ("D", "+868334210004") not in caller.calls


async def test_no_key_ends_not_acknowledged_and_nothing_is_called_outside_hours(
    factory: sessionmaker[Session],
) -> None:
    _units(factory)
    clock = Clock(local(2026, 12, 4, 21, 30))  # after the calling hours
    caller = ScriptedCaller(clock, {LEADER: [(CallOutcome.NO_KEY, None)] * 3})
    with session_scope(factory) as s:
        call_units_missing_roster(s, WEEK, clock(), created_by="sup", only_new=False)
    dispatcher = ReminderDispatcher(
        factory, caller, dataclasses.replace(SETTINGS, max_concurrent=1), clock=clock
    )
    assert await dispatcher.tick() == 0 and not caller.calls
    for at in (local(2026, 12, 5, 8, 30), local(2026, 12, 5, 9, 31), local(2026, 12, 5, 11, 32)):
        clock.set(at)
        while await dispatcher.tick():
            await dispatcher.drain()
    assert _week(factory)["A"].status is ReminderStatus.NOT_ACKNOWLEDGED


async def test_two_nodes_never_call_a_unit_twice(factory: sessionmaker[Session]) -> None:
    _units(factory)
    clock = Clock(local(2026, 12, 4, 15, 0))
    with session_scope(factory) as s:
        call_units_missing_roster(s, WEEK, clock(), created_by="sup", only_new=False)
        # a second request while the first is open queues A and B no second time (C, with no
        # number, ended at once and is listed again)
        again = call_units_missing_roster(s, WEEK, clock(), created_by="sup", only_new=False)
    assert again.unit_codes == ("C",)
    gate = asyncio.Event()
    caller = ScriptedCaller(clock, gate=gate)
    nodes = [
        ReminderDispatcher(factory, caller, dataclasses.replace(SETTINGS, node=n), clock=clock)
        for n in ("node-a", "node-b")
    ]
    claimed = await asyncio.gather(*(d.tick() for d in nodes))
    assert sum(claimed) == 2 and sorted(caller.calls) == [("A", LEADER),
                                                          ("B", "+868334210002")]  # fmt: skip
    assert sum(await asyncio.gather(*(d.tick() for d in nodes))) == 0  # all in flight
    gate.set()
    for d in nodes:
        await d.drain()
    assert {r.status for r in _week(factory).values()} == {
        ReminderStatus.ACKNOWLEDGED, ReminderStatus.FAILED,
    }  # fmt: skip


def test_one_roster_missing_event_per_unit_and_week(factory: sessionmaker[Session]) -> None:
    _units(factory)
    fire = local(2026, 12, 4, 15, 0)
    with session_scope(factory) as s:
        remind_missing_rosters(s, fire, local(2026, 12, 4, 15).tzinfo)  # type: ignore[arg-type]
        remind_missing_rosters(s, fire + timedelta(hours=1), fire.tzinfo)  # type: ignore[arg-type]
        call_units_missing_roster(s, WEEK, fire, created_by="sup", only_new=False)
    with session_scope(factory) as s:
        events = webhooks.list_events(s, event="roster.missing")
        reminders = reminder_repo.week_reminders(s, WEEK)
    data = [json.loads(e.body)["data"] for e in events]
    assert sorted((d["unit_code"], d["week"]) for d in data) == [("A", WEEK), ("B", WEEK),
                                                                 ("C", WEEK)]  # fmt: skip
    assert next(d for d in data if d["unit_code"] == "A")["number"] == LEADER
    assert "尚未报备" in data[0]["message"]
    # the weekly job's rerun did not queue second calls: one open reminder per unit
    assert len(reminders) == 3 and len({r.run_id for r in reminders if r.unit_code != "C"}) == 1


def test_claims_skip_a_number_already_being_called(factory: sessionmaker[Session]) -> None:
    _units(factory)
    now = local(2026, 12, 4, 15, 0)
    with session_scope(factory) as s:
        call_units_missing_roster(s, WEEK, now, created_by="sup", only_new=False)
    with session_scope(factory) as s:
        first = reminder_repo.claim_due(s, node="a", now=now, lease=timedelta(minutes=5), limit=10)
    with session_scope(factory) as s:
        second = reminder_repo.claim_due(s, node="b", now=now, lease=timedelta(minutes=5),
                                         limit=10)  # fmt: skip
    assert len(first) == 2 and second == []
    # the lease of a node that died expires: another node claims the reminder again
    later: datetime = now + timedelta(minutes=6)
    with session_scope(factory) as s:
        again = reminder_repo.claim_due(s, node="b", now=later, lease=timedelta(minutes=5),
                                        limit=10)  # fmt: skip
    assert {c.unit_code for c in again} == {"A", "B"}
    assert all(c.attempt_no == 1 for c in again)


def test_the_weekly_job_on_two_nodes_at_once_queues_each_unit_once(
    factory: sessionmaker[Session],
) -> None:
    _units(factory)
    fire = local(2026, 12, 4, 15, 0)
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def node() -> None:
        try:
            barrier.wait(5)
            with session_scope(factory) as s:
                remind_missing_rosters(s, fire, SH)
        except Exception as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=node) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert errors == []
    with session_scope(factory) as s:
        reminders = reminder_repo.week_reminders(s, WEEK)
        events = webhooks.list_events(s, event="roster.missing")
        notes = repo.list_notifications(s, week=WEEK)
        calls = s.scalar(select(func.count()).select_from(RosterReminderCall))
    assert [r.unit_code for r in reminders] == ["A", "B", "C"] and calls == 3
    assert len({r.run_id for r in reminders}) == 1  # all queued by one node
    assert len(events) == 3 and len(notes) == 3
