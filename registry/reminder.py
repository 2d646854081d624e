"""The weekly reminder (勤务报备提醒): which units have not reported for the coming week.

At the reminder time (LINKCALL_ROSTER_REMINDER) the weekly job records a notification per
unit without a roster for the coming week, queues one reminder call per such unit (the leader's
number from its latest roster, else its fallback; placed by calls/reminder_job.py inside the
calling hours) and one `roster.missing` webhook event per unit and week.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from registry.duty import coming_week
from storage import registry as repo
from storage import reminders as reminder_repo
from storage import webhooks
from storage.base import new_id, utcnow
from storage.engine import make_engine, make_session_factory, session_scope
from storage.registry import UnitInfo

log = logging.getLogger(__name__)

KIND = "roster_missing"
ROSTER_MISSING_EVENT = "roster.missing"


@dataclass(frozen=True, slots=True)
class ReminderRun:
    """One request to call the units without a roster: its id, the week, the units queued."""

    id: str
    week: str
    unit_codes: tuple[str, ...]


def reminder_message(unit: UnitInfo, week: str) -> str:
    """The text a unit is sent (Simplified Chinese first, English second)."""
    return (
        f"【110指挥中心】{unit.name}：贵单位尚未报备 {week} 周的值班表"
        "（值班领导、值班人员及电话），请尽快登录系统报备。"
        f" / {unit.name}: your duty roster for week {week} "
        "(duty leader, staff and phone numbers) has not been reported; please submit it now."
    )


def reminder_number(session: Session, unit: UnitInfo) -> str | None:
    """Whom a reminder calls: the leader of the unit's latest roster, else its fallback."""
    roster = repo.newest_roster(session, unit.code)
    if roster is not None and roster.leader_phone:
        return roster.leader_phone
    return unit.fallback_number


def call_units_missing_roster(
    session: Session, week: str, now: datetime, *, created_by: str, only_new: bool
) -> ReminderRun:
    """Queue a reminder call, due now, for each active unit without a roster for `week`, and
    one `roster.missing` webhook event per unit and week (never a second one).

    `only_new` (the weekly job): skip a unit already called about `week`; otherwise (a
    supervisor's request) skip only a unit whose reminder is still pending or calling.
    """
    reminder_repo.serialise_planning(session)
    run_id = new_id()
    missing = repo.units_missing_roster(session, week)
    skip = reminder_repo.units_with_reminder(session, week, open_only=not only_new)
    queued: list[str] = []
    for unit in missing:
        number = reminder_number(session, unit)
        webhooks.enqueue(
            session,
            ROSTER_MISSING_EVENT,
            {
                "unit_code": unit.code,
                "unit_name": unit.name,
                "week": week,
                "number": number,
                "message": reminder_message(unit, week),
            },
            now=now,
            dedupe_key=f"{ROSTER_MISSING_EVENT}:{unit.code}:{week}",
        )
        if unit.code in skip:
            continue
        reminder_repo.create_reminder(
            session, run_id=run_id, unit_code=unit.code, week=week, number=number, due_at=now,
            created_by=created_by, now=now,
        )  # fmt: skip
        queued.append(unit.code)
    log.info("reminder run %s for %s: %d call(s) queued", run_id, week, len(queued))
    return ReminderRun(run_id, week, tuple(queued))


def remind_missing_rosters(session: Session, now: datetime, zone: ZoneInfo) -> list[UnitInfo]:
    """Record one notification per active unit without a roster for the coming week.

    Rerunning in the same week does not repeat a reminder already raised for that week.
    Returns the units without a roster (whether newly reminded or not).
    """
    week = coming_week(now, zone)
    reminder_repo.serialise_planning(session)  # several nodes run this job at the same time
    missing = repo.units_missing_roster(session, week)
    already = {n.unit_code for n in repo.list_notifications(session, week=week, kind=KIND)}
    for unit in missing:
        if unit.code in already:
            continue
        repo.add_notification(
            session, unit.code, kind=KIND, week=week, message=reminder_message(unit, week), at=now
        )
    call_units_missing_roster(session, week, now, created_by="system", only_new=True)
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
