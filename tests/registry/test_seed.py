"""The demo seed: 45 linkage units, 30 townships, a valid roster each for this week."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from registry.duty import dial_list
from registry.numbers import DialPolicy
from registry.seed import seed_demo
from storage import registry as repo
from storage.engine import make_engine, make_session_factory, session_scope
from storage.models.registry import UnitKind

SH = ZoneInfo("Asia/Shanghai")


def test_seed_demo_is_complete_valid_and_idempotent(migrated_url: str) -> None:
    engine = make_engine(migrated_url)
    factory = make_session_factory(engine)
    now = datetime(2026, 12, 2, 10, tzinfo=SH)
    try:
        with session_scope(factory) as s:
            first = seed_demo(s, now)
        with session_scope(factory) as s:
            again = seed_demo(s, now)
            units = repo.list_units(s)
            assert len(repo.list_units(s, kind=UnitKind.LINKAGE)) == 45
            assert len(repo.list_units(s, kind=UnitKind.TOWNSHIP)) == 30
            assert "县12345政府服务热线" in {u.name for u in units}
            assert repo.units_missing_roster(s, "2026-W49") == []
            rosters = repo.latest_rosters_for_week(s, "2026-W49")
        assert (first.week, first.units_created, first.rosters_added) == ("2026-W49", 75, 75)
        assert (again.units_created, again.rosters_added) == (0, 0)
        assert len(rosters) == 75 and all(r.version == 1 for r in rosters)
        for unit, roster in zip(units, rosters, strict=True):
            numbers = [roster.leader_phone, *(p.phone for p in roster.staff), unit.fallback_number]
            for n in numbers:
                assert n is not None
                assert DialPolicy().check(n).canonical == n
            # Wednesday 10:00: the day-shift officer first, the night officer is off duty.
            entries = dial_list(roster, unit.fallback_number, now, SH)
            assert entries[0].name == roster.staff[0].name
            assert roster.staff[1].name not in [e.name for e in entries if e.role == "staff"]
            assert entries[-1].role == "fallback"
    finally:
        engine.dispose()
