"""Scheduled 查岗: the schedule setting, planning once per slot, claiming when due (also after
a restart), missed checks; on SQLite and PostgreSQL with a scripted caller."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Iterator
from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError
from sqlalchemy.orm import Session, sessionmaker

from api.settings import Settings
from calls.duty_check_job import DutyCheckCallResult
from calls.duty_check_plans import DutyCheckPlanner, DutyCheckPlanSettings
from registry.duty_schedule import InvalidDutyCheckSchedule, parse_rule, parse_schedule
from registry.numbers import DialPolicy
from storage import duty_plans
from storage import registry as repo
from storage.engine import make_engine, make_session_factory, session_scope
from storage.models.registry import DutyCheckOutcome, UnitKind
from storage.models.reminders import PlanStatus
from tests.surveys.conftest import Clock, local

SH = ZoneInfo("Asia/Shanghai")


def test_rules_parse_and_fire_at_their_local_times() -> None:
    daily, weekly = parse_schedule("daily 02:00 sample=5; weekly sun 20:00 all")
    assert (daily.sample, daily.weekday) == (5, None)
    assert (weekly.sample, weekly.weekday) == (None, 7)
    wed = local(2026, 12, 2, 10, 0)
    assert daily.next_after(wed, SH) == local(2026, 12, 3, 2, 0)
    assert daily.next_after(local(2026, 12, 3, 1, 59, 59), SH) == local(2026, 12, 3, 2, 0)
    assert weekly.next_after(wed, SH) == local(2026, 12, 6, 20, 0)
    assert weekly.next_after(local(2026, 12, 6, 20, 0), SH) == local(2026, 12, 13, 20, 0)
    assert parse_rule("daily 02:00:30").at.second == 30
    assert parse_schedule("") == ()
    picked = daily.pick([f"U{i:02d}" for i in range(20)], random.Random(1))
    assert len(picked) == 5 and picked == sorted(set(picked))
    assert weekly.pick(["B", "A"]) == ["A", "B"]


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("hourly 02:00", "starts with 'daily' or 'weekly'"),
        ("weekly 20:00 all", "needs a day"),
        ("daily 2:00", "HH:MM"),
        ("daily 25:00", "not a time of day"),
        ("daily 02:00 sample=0", "sample=N"),
        ("daily 02:00 some", "sample=N"),
        ("daily", "expected a time"),
    ],
)
def test_a_bad_schedule_is_refused_with_a_clear_error(text: str, says: str) -> None:
    with pytest.raises(InvalidDutyCheckSchedule, match=says):
        parse_schedule(text)
    with pytest.raises(ValidationError, match="LINKCALL_DUTY_CHECK_SCHEDULE"):
        Settings(duty_check_schedule=text)


@pytest.fixture
def factory(migrated_url: str) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(migrated_url)
    yield make_session_factory(engine)
    engine.dispose()


class Caller:
    """Presses 1 on every call; remembers the numbers."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    async def call(self, number: str, *, timeout_s: float) -> DutyCheckCallResult:
        self.calls.append(number)
        await asyncio.sleep(0.01)
        return DutyCheckCallResult(DutyCheckOutcome.PASSED, key="1")


def _planner(factory: sessionmaker[Session], clock: Clock, caller: Caller, rules: str,
             node: str = "node-a") -> DutyCheckPlanner:  # fmt: skip
    settings = DutyCheckPlanSettings(
        rules=parse_schedule(rules), zone=SH, node=node, policy=DialPolicy(), grace_s=600
    )
    return DutyCheckPlanner(factory, caller, settings, clock=clock, rng=random.Random(7))


def _units(factory: sessionmaker[Session], n: int) -> None:
    with session_scope(factory) as s:
        for i in range(n):
            repo.create_unit(s, code=f"U{i:02d}", name=f"单位{i}", kind=UnitKind.LINKAGE,
                             fallback_number=f"+8683342100{i:02d}")  # fmt: skip


def _plans(factory: sessionmaker[Session]) -> list[duty_plans.PlannedCheck]:
    with session_scope(factory) as s:
        return duty_plans.list_plans(s)


async def test_a_slot_is_planned_once_and_placed_when_due_even_by_a_restarted_process(
    factory: sessionmaker[Session],
) -> None:
    _units(factory, 4)
    clock = Clock(local(2026, 12, 2, 1, 0))
    caller = Caller()
    first, other = (_planner(factory, clock, caller, "daily 02:00 sample=2", n)
                    for n in ("node-a", "node-b"))  # fmt: skip
    assert await first.tick() == 0 and await other.tick() == 0  # two nodes plan one slot
    plans = _plans(factory)
    assert len(plans) == 2 and {p.due_at for p in plans} == {local(2026, 12, 2, 2, 0)}
    assert not caller.calls

    restarted = _planner(factory, clock, caller, "daily 02:00 sample=2")  # a new process
    clock.set(local(2026, 12, 2, 2, 0, 5))
    started = await asyncio.gather(restarted.tick(), other.tick())
    assert sum(started) == 2  # each planned check claimed by one node only
    await restarted.drain()
    await other.drain()
    assert sorted(caller.calls) == sorted(f"+8683342100{p.unit_code[1:]}" for p in plans)
    by_id = {p.id: p for p in _plans(factory)}
    assert all(by_id[p.id].status is PlanStatus.DONE and by_id[p.id].check_id for p in plans)
    # the next slot (tomorrow 02:00) is planned, once
    assert sorted({p.due_at for p in by_id.values()}) == [
        local(2026, 12, 2, 2),
        local(2026, 12, 3, 2),
    ]
    assert len(by_id) == 4


async def test_a_check_found_long_after_its_time_is_missed_not_placed(
    factory: sessionmaker[Session],
) -> None:
    _units(factory, 1)
    clock = Clock(local(2026, 12, 2, 1, 0))
    caller = Caller()
    await _planner(factory, clock, caller, "weekly wed 02:00 all").tick()
    clock.set(local(2026, 12, 2, 2, 11))  # 11 min late, grace 10 min (the service was down)
    await _planner(factory, clock, caller, "weekly wed 02:00 all").tick()
    missed = [p for p in _plans(factory) if p.due_at == local(2026, 12, 2, 2, 0)]
    assert [p.status for p in missed] == [PlanStatus.MISSED] and not caller.calls


async def test_a_unit_without_any_number_fails_its_planned_check(
    factory: sessionmaker[Session],
) -> None:
    with session_scope(factory) as s:
        repo.create_unit(s, code="N1", name="无号码", kind=UnitKind.TOWNSHIP, fallback_number=None)
    clock = Clock(local(2026, 12, 2, 1, 59, 59))
    planner = _planner(factory, clock, Caller(), "daily 02:00")
    await planner.tick()
    clock.set(clock() + timedelta(seconds=1))
    await planner.tick()
    await planner.drain()
    (plan,) = [p for p in _plans(factory) if p.status is not PlanStatus.PLANNED]
    assert plan.status is PlanStatus.FAILED and "no duty phone" in (plan.detail or "")
