"""The weekly reminder (勤务报备提醒): which units have not reported for the coming week."""

from __future__ import annotations

import logging
from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from registry.duty import coming_week
from storage import registry as repo
from storage.base import utcnow
from storage.engine import make_engine, make_session_factory, session_scope
from storage.registry import UnitInfo

log = logging.getLogger(__name__)

KIND = "roster_missing"


def reminder_message(unit: UnitInfo, week: str) -> str:
    """The text a unit is sent (Simplified Chinese first, English second)."""
    return (
        f"【110指挥中心】{unit.name}：贵单位尚未报备 {week} 周的值班表"
        "（值班领导、值班人员及电话），请尽快登录系统报备。"
        f" / {unit.name}: your duty roster for week {week} "
        "(duty leader, staff and phone numbers) has not been reported; please submit it now."
    )


def remind_missing_rosters(session: Session, now: datetime, zone: ZoneInfo) -> list[UnitInfo]:
    """Record one notification per active unit without a roster for the coming week.

    Rerunning in the same week does not repeat a reminder already raised for that week.
    Returns the units without a roster (whether newly reminded or not).
    """
    week = coming_week(now, zone)
    missing = repo.units_missing_roster(session, week)
    already = {n.unit_code for n in repo.list_notifications(session, week=week, kind=KIND)}
    for unit in missing:
        if unit.code in already:
            continue
        repo.add_notification(
            session, unit.code, kind=KIND, week=week, message=reminder_message(unit, week), at=now
        )
    if missing:
        log.warning(
            "duty rosters missing for %s: %d unit(s): %s",
            week,
            len(missing),
            ", ".join(u.code for u in missing),
        )
    else:
        log.info("every active unit has reported its roster for %s", week)
    return missing


def run_weekly_reminder(database_url: str, timezone: str, now: datetime | None = None) -> list[str]:
    """The scheduled entry point: returns the codes of the units without a roster."""
    engine = make_engine(database_url)
    try:
        with session_scope(make_session_factory(engine)) as session:
            missing = remind_missing_rosters(session, now or utcnow(), ZoneInfo(timezone))
            return [u.code for u in missing]
    finally:
        engine.dispose()
