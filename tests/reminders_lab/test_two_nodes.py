"""Two service processes (`python -m api serve`) on one PostgreSQL run the weekly reminder job
at the same moment and dispatch the reminder calls against a SIPp answerer pressing 1 by SIP
INFO: every unit without a roster is queued once and called exactly once (INVITEs counted in
SIPp's message log, `reminder` calls rows per number), and both nodes took part."""

# ruff: noqa: F811  (the fixtures imported from the survey lab are parameters here)
from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from registry.duty import coming_week
from registry.reminder import remind_missing_rosters
from storage import registry as registry_repo
from storage import reminders as reminder_repo
from storage.base import utcnow
from storage.engine import session_scope
from storage.models.call_records import Call, CallKind, Leg
from storage.models.registry import UnitKind
from storage.models.reminders import ReminderStatus, RosterReminderAttempt
from tests.surveys_lab.test_two_processes import (  # noqa: F401 (fixtures used by name)
    ServiceProcess,
    _dial_form,
    _invites,
    answerer,
    factory,
    services,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]
UNITS = 30
SH = ZoneInfo("Asia/Shanghai")


def _units(factory: sessionmaker[Session]) -> dict[str, str]:
    """30 units without a roster, each with its own fallback number; code -> number."""
    out = {}
    with session_scope(factory) as s:
        for n in range(UNITS):
            code, number = f"L{n:02d}", f"+86138001{n:05d}"
            registry_repo.create_unit(s, code=code, name=f"单位{n}", kind=UnitKind.LINKAGE,
                                      fallback_number=number)  # fmt: skip
            out[code] = number
    return out


def _weekly_job_on_both_nodes(factory: sessionmaker[Session]) -> None:
    """What each node's APScheduler does at the reminder time: the same job, at once."""
    barrier = threading.Barrier(2)
    errors: list[Exception] = []

    def node() -> None:
        try:
            barrier.wait(5)
            with session_scope(factory) as s:
                remind_missing_rosters(s, utcnow(), SH)
        except Exception as exc:  # asserted below
            errors.append(exc)

    threads = [threading.Thread(target=node) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert errors == []


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_two_nodes_call_each_unit_without_a_roster_exactly_once(
    factory: sessionmaker[Session], services: Callable[[str], ServiceProcess], tmp_path: Path
) -> None:
    a, b = services("node-a"), services("node-b")
    a.wait_ready()
    b.wait_ready()
    numbers = _units(factory)
    _weekly_job_on_both_nodes(factory)
    week = coming_week(utcnow(), SH)

    deadline = time.monotonic() + 90
    while True:
        with session_scope(factory) as s:
            done = [r for r in reminder_repo.week_reminders(s, week)
                    if r.status is ReminderStatus.ACKNOWLEDGED]  # fmt: skip
        if len(done) == UNITS:
            break
        assert time.monotonic() < deadline, f"only {len(done)} of {UNITS} acknowledged"
        time.sleep(0.5)

    with session_scope(factory) as s:
        reminders = reminder_repo.week_reminders(s, week)
        nodes = Counter(s.scalars(select(RosterReminderAttempt.node)))
        calls = Counter(
            s.scalars(select(Leg.number).join(Call, Leg.call_id == Call.id)
                      .where(Call.kind == CallKind.REMINDER))
        )  # fmt: skip
    assert {r.unit_code: r.number for r in reminders} == numbers
    odd = {
        r.unit_code: r.attempts for r in reminders if [t.outcome for t in r.attempts] != ["answer"]
    }
    assert odd == {}
    assert len({r.run_id for r in reminders}) == 1  # queued by one node's job only
    assert set(nodes) == {"node-a", "node-b"} and sum(nodes.values()) == UNITS  # both called
    dialled = {_dial_form(n) for n in numbers.values()}
    assert calls == Counter(dict.fromkeys(dialled, 1))
    assert _invites(tmp_path / "sipp") == Counter(dict.fromkeys(dialled, 1))
    assert timedelta(0) <= utcnow() - reminders[0].created_at < timedelta(minutes=5)
