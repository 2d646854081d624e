"""The weekly reminder at its configured local time, and duty-check storage at the caller seam."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy.orm import Session, sessionmaker

from api.scheduler import REMINDER_JOB_ID, ReminderSchedule, Scheduler
from calls.duty_check_job import (
    DutyCheckCallResult,
    NoDutyPhone,
    run_duty_check,
    set_caller,
)
from storage import registry as repo
from storage.engine import make_engine, make_session_factory, session_scope
from storage.models.registry import DutyCheckOutcome, UnitKind
from storage.registry import RosterValues, StaffEntry

SH = ZoneInfo("Asia/Shanghai")


@pytest.fixture
def factory(migrated_url: str) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(migrated_url)
    yield make_session_factory(engine)
    engine.dispose()


def _roster(phone: str = "+8613800000001") -> RosterValues:
    return RosterValues("王局长", "+8613900000001", (StaffEntry("张三", phone, 1),), None)


def _setup(factory: sessionmaker[Session]) -> None:
    with session_scope(factory) as s:
        for code, active in (("A", True), ("B", True), ("C", True), ("Z", False)):
            repo.create_unit(
                s,
                code=code,
                name=f"单位{code}",
                kind=UnitKind.LINKAGE,
                fallback_number="+868334210000",
                active=active,
            )
        repo.add_roster_version(s, "A", "2026-W50", _roster(), submitted_by="A")
        repo.add_roster_version(s, "B", "2026-W49", _roster(), submitted_by="B")  # this week only
        repo.add_roster_version(s, "A", "2027-W01", _roster(), submitted_by="A")


async def test_reminder_fires_friday_15_local_and_lists_exactly_the_missing_units(
    migrated_url: str, factory: sessionmaker[Session]
) -> None:
    _setup(factory)
    clock_now = [datetime(2026, 12, 2, 10, 0, tzinfo=SH)]  # Wednesday of 2026-W49
    scheduler = Scheduler(
        database_url=migrated_url, timezone="Asia/Shanghai", clock=lambda: clock_now[0]
    )
    await scheduler.start()
    try:
        assert REMINDER_JOB_ID in scheduler.job_ids()
        assert scheduler.health().ok
        fire = scheduler.next_fire_time(REMINDER_JOB_ID)
        assert fire == datetime(2026, 12, 4, 15, 0, tzinfo=SH)  # Friday 15:00 in Shanghai
        assert fire is not None and fire.astimezone(UTC).hour == 7
        # One minute before, it still fires at 15:00 the same day; at 15:00 the next is a week on.
        assert scheduler.next_fire_time(REMINDER_JOB_ID, fire - timedelta(minutes=1)) == fire
        assert scheduler.next_fire_time(
            REMINDER_JOB_ID, fire + timedelta(seconds=1)
        ) == fire + timedelta(days=7)

        clock_now[0] = fire
        assert scheduler.run_job(REMINDER_JOB_ID) == ["B", "C"]  # Z is inactive, A reported
        assert scheduler.run_job(REMINDER_JOB_ID) == ["B", "C"]  # a rerun repeats no reminder
        with session_scope(factory) as s:
            notes = repo.list_notifications(s, kind="roster_missing")
        assert [(n.unit_code, n.week, n.created_at) for n in notes] == [
            ("B", "2026-W50", fire),
            ("C", "2026-W50", fire),
        ]
        assert (
            "尚未报备 2026-W50" in notes[0].message and "has not been reported" in notes[0].message
        )

        # Across the year end: Wednesday 30 Dec 2026 (W53) -> Friday 1 Jan 2027 -> 2027-W01.
        fire = scheduler.next_fire_time(REMINDER_JOB_ID, datetime(2026, 12, 30, 9, tzinfo=SH))
        assert fire == datetime(2027, 1, 1, 15, tzinfo=SH)
        assert scheduler.run_job(REMINDER_JOB_ID, now=fire) == ["B", "C"]
        with session_scope(factory) as s:
            assert [n.unit_code for n in repo.list_notifications(s, week="2027-W01")] == ["B", "C"]
    finally:
        await scheduler.stop()
    assert not scheduler.health().ok


async def test_reminder_time_is_configurable(migrated_url: str) -> None:
    scheduler = Scheduler(
        database_url=migrated_url,
        timezone="Asia/Shanghai",
        reminder=ReminderSchedule(day_of_week="thu", hour=9, minute=30),
    )
    await scheduler.start()
    try:
        after = datetime(2026, 12, 2, 10, 0, tzinfo=SH)
        assert scheduler.next_fire_time(REMINDER_JOB_ID, after) == datetime(
            2026, 12, 3, 9, 30, tzinfo=SH
        )
    finally:
        await scheduler.stop()


class FakeCaller:
    """The seam the SIP user agent will fill: records calls, answers with a scripted result."""

    def __init__(self, result: DutyCheckCallResult | Exception) -> None:
        self.result = result
        self.calls: list[tuple[str, float]] = []

    async def call(self, number: str, *, timeout_s: float) -> DutyCheckCallResult:
        self.calls.append((number, timeout_s))
        if isinstance(self.result, Exception):
            raise self.result
        return self.result


async def test_duty_checks_are_stored_and_listed_per_unit(reg: Any) -> None:
    now, week = datetime(2026, 12, 2, 10, tzinfo=SH), "2026-W49"
    body = {
        "leader": {"name": "王局长", "phone": "13900000001"},
        "staff": [{"name": "张三", "phone": "13812345678"}],
    }
    assert (
        reg.client.put(
            f"/api/v1/units/U01/rosters/{week}", json=body, headers=reg.auth("unit")
        ).status_code
        == 201
    )
    results = [
        DutyCheckCallResult(DutyCheckOutcome.PASSED, key="1"),
        DutyCheckCallResult(DutyCheckOutcome.NO_KEY, key="5"),  # the wrong key: not a pass
        DutyCheckCallResult(DutyCheckOutcome.NO_ANSWER, detail="480 after 30 s"),
        RuntimeError("media engine down"),
    ]
    callers = []
    for i, result in enumerate(results):
        caller = FakeCaller(result)
        callers.append(caller)
        tick = now + timedelta(minutes=i)
        await run_duty_check(
            reg.session_factory, caller, "U01", zone=SH, clock=lambda t=tick: t, timeout_s=5
        )
    staff, leader, fallback = "+8613812345678", "+8613900000001", "+868334210001"
    # a pass, a wrong key and a failure end the check at the first number; nobody answering
    # goes down the dial list: the staff member, the leader, the unit's fallback
    assert [c.calls for c in callers] == [
        [(staff, 5)], [(staff, 5)], [(staff, 5), (leader, 5), (fallback, 5)], [(staff, 5)],
    ]  # fmt: skip

    r = reg.client.get("/api/v1/units/U01/duty-checks", headers=reg.auth("supervisor"))
    assert r.status_code == 200
    got = [(d["outcome"], d["key_pressed"], d["person"], d["number"]) for d in r.json()]
    assert got == [
        ("failed", None, "张三", staff),
        ("no_answer", None, "值班总机 / unit switchboard", fallback),  # the last one tried
        ("no_key", "5", "张三", staff),
        ("pass", "1", "张三", staff),
    ]
    assert r.json()[0]["detail"] == "call failed: RuntimeError; tried 1: staff failed"
    assert r.json()[1]["detail"].endswith(
        "tried 3: staff no_answer, leader no_answer, fallback no_answer"
    )
    assert (
        reg.client.get("/api/v1/units/U01/duty-checks", headers=reg.auth("unit")).status_code == 200
    )
    assert (
        reg.client.get("/api/v1/units/U01/duty-checks", headers=reg.auth("unit2")).status_code
        == 403
    )
    assert reg.client.get("/api/v1/units/U02/duty-checks", headers=reg.auth("admin")).json() == []


async def test_a_unit_without_any_number_cannot_be_checked(factory: sessionmaker[Session]) -> None:
    with session_scope(factory) as s:
        repo.create_unit(s, code="N", name="无号码", kind=UnitKind.TOWNSHIP, fallback_number=None)
    with pytest.raises(NoDutyPhone):
        await run_duty_check(
            factory, FakeCaller(DutyCheckCallResult(DutyCheckOutcome.PASSED, "1")), "N", zone=SH
        )
    with session_scope(factory) as s:
        assert repo.list_duty_checks(s, "N") == []


def test_a_supervisor_starts_a_duty_check_that_the_running_scheduler_performs(reg: Any) -> None:
    url = "/api/v1/units/U01/duty-checks"
    set_caller(None)  # no telephony caller: checks cannot run
    r = reg.client.post(url, headers=reg.auth("supervisor"))
    assert r.status_code == 503
    assert r.headers["content-type"] == "application/problem+json"
    caller = FakeCaller(DutyCheckCallResult(DutyCheckOutcome.PASSED, key="1"))
    set_caller(caller)  # the fake at the telephony seam (the app installed the real one)
    try:
        assert reg.client.post(url, headers=reg.auth("dispatcher")).status_code == 403
        assert (
            reg.client.post("/api/v1/units/NOPE/duty-checks", headers=reg.auth("admin")).status_code
            == 404
        )
        r = reg.client.post(url, headers=reg.auth("supervisor"))
        assert r.status_code == 202, r.text
        assert r.json()["job_id"].startswith("registry.duty_check:U01:")
        deadline = time.monotonic() + 10
        checks: list[dict[str, Any]] = []
        while time.monotonic() < deadline and not checks:
            checks = reg.client.get(url, headers=reg.auth("supervisor")).json()
            time.sleep(0.05)
    finally:
        set_caller(None)
    # No roster this week: the unit's fallback number is what gets checked.
    assert [(c["outcome"], c["number"]) for c in checks] == [("pass", "+868334210001")]
    assert caller.calls and caller.calls[0][0] == "+868334210001"


class ScriptedCaller:
    """Answers each number with its own scripted result."""

    def __init__(self, by_number: dict[str, DutyCheckCallResult]) -> None:
        self.by_number = by_number
        self.calls: list[str] = []

    async def call(self, number: str, *, timeout_s: float) -> DutyCheckCallResult:
        self.calls.append(number)
        return self.by_number[number]


async def test_a_busy_staff_phone_moves_the_check_to_the_leader_who_passes(reg: Any) -> None:
    week = "2026-W49"
    body = {
        "leader": {"name": "王局长", "phone": "13900000001"},
        "staff": [{"name": "张三", "phone": "13812345678"}],
    }
    r = reg.client.put(f"/api/v1/units/U01/rosters/{week}", json=body, headers=reg.auth("unit"))
    assert r.status_code == 201
    caller = ScriptedCaller({
        "+8613812345678": DutyCheckCallResult(DutyCheckOutcome.BUSY),
        "+8613900000001": DutyCheckCallResult(DutyCheckOutcome.PASSED, key="1"),
    })  # fmt: skip
    tick = datetime(2026, 12, 2, 10, tzinfo=SH)
    record = await run_duty_check(reg.session_factory, caller, "U01", zone=SH, clock=lambda: tick)
    assert caller.calls == ["+8613812345678", "+8613900000001"]
    assert (record.outcome, record.number, record.person) == (
        DutyCheckOutcome.PASSED, "+8613900000001", "王局长",
    )  # fmt: skip


def test_reminders_raised_by_the_job_are_listed(reg: Any) -> None:
    from registry.reminder import remind_missing_rosters

    fire = datetime(2026, 12, 4, 15, tzinfo=SH)
    with session_scope(reg.session_factory) as s:
        remind_missing_rosters(s, fire, SH)
        remind_missing_rosters(s, fire + timedelta(minutes=5), SH)  # a rerun queues nothing new
    r = reg.client.get("/api/v1/rosters/reminders?week=2026-W50", headers=reg.auth("dispatcher"))
    assert r.status_code == 200
    assert r.json()["week"] == "2026-W50"
    # no roster at all: each unit's fallback number is called
    assert [
        (u["unit_code"], u["number"], u["outcome"], u["attempts"]) for u in r.json()["units"]
    ] == [
        ("T01", "+868334210003", "pending", []),
        ("U01", "+868334210001", "pending", []),
        ("U02", "+868334210002", "pending", []),
    ]
    with session_scope(reg.session_factory) as s:
        notes = repo.list_notifications(s, week="2026-W50")
    assert "玉津镇" in notes[0].message
