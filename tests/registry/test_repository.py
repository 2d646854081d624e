"""The registry repository on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, time, timedelta

import pytest
from sqlalchemy.orm import Session

from storage import registry as repo
from storage.engine import make_engine, make_session_factory, session_scope
from storage.errors import Conflict, NotFound
from storage.models.registry import DutyCheckOutcome, UnitKind
from storage.registry import RosterValues, Shift, StaffEntry, UnitInfo


@pytest.fixture
def session(migrated_url: str) -> Iterator[Session]:
    engine = make_engine(migrated_url)
    factory = make_session_factory(engine)
    with session_scope(factory) as s:
        yield s
    engine.dispose()


def _values(leader: str, *staff: str) -> RosterValues:
    entries = tuple(
        StaffEntry(f"staff{i}", p, i, Shift((1, 2), time(8), time(18)) if i == 1 else None)
        for i, p in enumerate(staff, start=1)
    )
    return RosterValues("leader", leader, entries, None)


def test_versions_latest_and_missing(session: Session) -> None:
    for code in ("A", "B", "C"):
        repo.create_unit(session, code=code, name=code, kind=UnitKind.LINKAGE, fallback_number=None)
    repo.upsert_unit(session, UnitInfo("C", "C", UnitKind.TOWNSHIP, None, active=False))
    with pytest.raises(Conflict):
        repo.create_unit(session, code="A", name="A", kind=UnitKind.LINKAGE, fallback_number=None)
    t0 = datetime(2026, 12, 1, tzinfo=UTC)
    repo.add_roster_version(session, "A", "2026-W49", _values("+861"), submitted_by="a", at=t0)
    repo.add_roster_version(
        session, "A", "2026-W49", _values("+862", "+863"), submitted_by="b", at=t0 + timedelta(1)
    )
    repo.add_roster_version(session, "B", "2026-W50", _values("+864"), submitted_by="c", at=t0)

    history = repo.roster_history(session, "A", "2026-W49")
    assert [(v.version, v.leader_phone, v.submitted_by) for v in history] == [
        (1, "+861", "a"),
        (2, "+862", "b"),
    ]
    assert history[1].submitted_at == t0 + timedelta(1)
    assert history[1].staff[0].shift == Shift((1, 2), time(8), time(18))
    latest = repo.latest_rosters_for_week(session, "2026-W49")
    assert [(r.unit_code, r.version) for r in latest] == [("A", 2)]
    # C is inactive: not chased.
    assert [u.code for u in repo.units_missing_roster(session, "2026-W49")] == ["B"]
    assert [u.code for u in repo.units_missing_roster(session, "2026-W50")] == ["A"]
    assert repo.latest_roster(session, "B", "2026-W49") is None
    with pytest.raises(NotFound):
        repo.roster_history(session, "Z", "2026-W49")


def test_duty_checks_and_notifications(session: Session) -> None:
    repo.create_unit(session, code="A", name="A", kind=UnitKind.LINKAGE, fallback_number=None)
    t0 = datetime(2026, 12, 1, 2, tzinfo=UTC)
    for i, outcome in enumerate([DutyCheckOutcome.PASSED, DutyCheckOutcome.NO_ANSWER]):
        repo.record_duty_check(
            session,
            "A",
            week="2026-W49",
            number="+8613800000001",
            person="张三",
            outcome=outcome,
            key_pressed="1" if outcome is DutyCheckOutcome.PASSED else None,
            detail=None,
            started_at=t0 + timedelta(hours=i),
            finished_at=t0 + timedelta(hours=i, seconds=20),
        )
    checks = repo.list_duty_checks(session, "A")
    assert [c.outcome for c in checks] == [DutyCheckOutcome.NO_ANSWER, DutyCheckOutcome.PASSED]
    assert checks[1].started_at == t0 and checks[1].key_pressed == "1"
    repo.add_notification(session, "A", kind="roster_missing", week="2026-W50", message="m", at=t0)
    got = repo.list_notifications(session, week="2026-W50")
    assert [(n.unit_code, n.kind, n.created_at) for n in got] == [("A", "roster_missing", t0)]
