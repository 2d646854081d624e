"""Repository for the duty registry: plain values in, plain values out.

Numbers handed in are already canonical (registry/numbers.py); weeks are already canonical
(`2026-W49`, registry/duty.py). This module only stores and reads.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from storage.base import utcnow
from storage.errors import Conflict, NotFound
from storage.models.registry import (
    DutyCheck,
    DutyCheckOutcome,
    RegistryNotification,
    Roster,
    Unit,
    UnitKind,
)


@dataclass(frozen=True, slots=True)
class UnitInfo:
    """A unit on the duty list."""

    code: str
    name: str
    kind: UnitKind
    fallback_number: str | None
    active: bool


@dataclass(frozen=True, slots=True)
class Shift:
    """When a staff member is on duty: ISO weekdays (empty = every day) and [start, end)."""

    days: tuple[int, ...] = ()
    start: time | None = None
    end: time | None = None


@dataclass(frozen=True, slots=True)
class StaffEntry:
    """One duty staff member: who, which number, in which order they are dialled."""

    name: str
    phone: str
    order: int
    shift: Shift | None = None


@dataclass(frozen=True, slots=True)
class RosterValues:
    """What a unit submits for a week."""

    leader_name: str
    leader_phone: str
    staff: tuple[StaffEntry, ...]
    notes: str | None = None


@dataclass(frozen=True, slots=True)
class RosterVersion:
    """One stored submission."""

    unit_code: str
    week: str
    version: int
    leader_name: str
    leader_phone: str
    staff: tuple[StaffEntry, ...]
    notes: str | None
    submitted_by: str
    submitted_at: datetime


@dataclass(frozen=True, slots=True)
class DutyCheckRecord:
    """A stored 查岗 result."""

    id: str
    unit_code: str
    week: str
    number: str
    person: str
    outcome: DutyCheckOutcome
    key_pressed: str | None
    detail: str | None
    started_at: datetime
    finished_at: datetime


@dataclass(frozen=True, slots=True)
class Notification:
    """A stored reminder."""

    id: int
    kind: str
    unit_code: str
    week: str
    message: str
    created_at: datetime


# ---- units ----
def _unit_info(row: Unit) -> UnitInfo:
    return UnitInfo(row.code, row.name, row.kind, row.fallback_number, row.active)


def _unit_row(session: Session, code: str) -> Unit:
    row = session.scalar(select(Unit).where(Unit.code == code))
    if row is None:
        raise NotFound("unit", code)
    return row


def create_unit(
    session: Session,
    *,
    code: str,
    name: str,
    kind: UnitKind,
    fallback_number: str | None,
    active: bool = True,
) -> UnitInfo:
    """Add a unit; Conflict when the code is taken."""
    if session.scalar(select(Unit.id).where(Unit.code == code)) is not None:
        raise Conflict(f"unit {code!r} already exists")
    row = Unit(code=code, name=name, kind=kind, fallback_number=fallback_number, active=active)
    session.add(row)
    session.flush()
    return _unit_info(row)


def upsert_unit(session: Session, unit: UnitInfo) -> bool:
    """Create or update a unit by code; True when it was created."""
    row = session.scalar(select(Unit).where(Unit.code == unit.code))
    created = row is None
    if row is None:
        row = Unit(code=unit.code)
        session.add(row)
    row.name, row.kind, row.fallback_number, row.active = (
        unit.name,
        unit.kind,
        unit.fallback_number,
        unit.active,
    )
    session.flush()
    return created


def update_unit(session: Session, code: str, changes: dict[str, Any]) -> UnitInfo:
    """Change a unit's `name`, `kind`, `fallback_number` (None clears it) or `active`; its
    rosters, calls and incidents stay (a deactivated unit keeps its history). NotFound."""
    row = _unit_row(session, code)
    allowed = {"name", "kind", "fallback_number", "active"}
    unknown = set(changes) - allowed
    if unknown:
        raise ValueError(f"cannot change {', '.join(sorted(unknown))}")
    for key, value in changes.items():
        setattr(row, key, value)
    session.flush()
    return _unit_info(row)


def get_unit(session: Session, code: str) -> UnitInfo:
    """One unit by code; NotFound otherwise."""
    return _unit_info(_unit_row(session, code))


def unit_codes(session: Session, unit_ids: set[int]) -> dict[int, str]:
    """The codes of the units `unit_ids` (id → code; unknown ids are absent)."""
    if not unit_ids:
        return {}
    return dict(session.execute(select(Unit.id, Unit.code).where(Unit.id.in_(unit_ids))).all())


def list_units(
    session: Session, *, kind: UnitKind | None = None, active_only: bool = False
) -> list[UnitInfo]:
    """Units ordered by code."""
    stmt = select(Unit).order_by(Unit.code)
    if kind is not None:
        stmt = stmt.where(Unit.kind == kind)
    if active_only:
        stmt = stmt.where(Unit.active.is_(True))
    return [_unit_info(r) for r in session.scalars(stmt)]


# ---- rosters ----
def _shift_json(shift: Shift | None) -> dict[str, Any] | None:
    if shift is None:
        return None
    return {
        "days": list(shift.days),
        "start": shift.start.strftime("%H:%M:%S") if shift.start else None,
        "end": shift.end.strftime("%H:%M:%S") if shift.end else None,
    }


def _shift_value(data: dict[str, Any] | None) -> Shift | None:
    if data is None:
        return None
    start, end = data.get("start"), data.get("end")
    return Shift(
        days=tuple(int(d) for d in data.get("days") or ()),
        start=time.fromisoformat(start) if start else None,
        end=time.fromisoformat(end) if end else None,
    )


def _roster_version(row: Roster, unit_code: str) -> RosterVersion:
    staff = tuple(
        StaffEntry(s["name"], s["phone"], int(s["order"]), _shift_value(s.get("shift")))
        for s in row.staff
    )
    return RosterVersion(
        unit_code=unit_code,
        week=row.week,
        version=row.version,
        leader_name=row.leader_name,
        leader_phone=row.leader_phone,
        staff=staff,
        notes=row.notes,
        submitted_by=row.submitted_by,
        submitted_at=row.submitted_at,
    )


def add_roster_version(
    session: Session,
    unit_code: str,
    week: str,
    values: RosterValues,
    *,
    submitted_by: str,
    at: datetime | None = None,
) -> RosterVersion:
    """Store a new version of the unit's roster for `week` (previous versions stay)."""
    unit = _unit_row(session, unit_code)
    last = session.scalar(
        select(func.max(Roster.version)).where(Roster.unit_id == unit.id, Roster.week == week)
    )
    row = Roster(
        unit_id=unit.id,
        week=week,
        version=(last or 0) + 1,
        leader_name=values.leader_name,
        leader_phone=values.leader_phone,
        staff=[
            {"name": s.name, "phone": s.phone, "order": s.order, "shift": _shift_json(s.shift)}
            for s in values.staff
        ],
        notes=values.notes,
        submitted_by=submitted_by,
        submitted_at=at or utcnow(),
    )
    session.add(row)
    try:
        session.flush()
    except IntegrityError as exc:
        raise Conflict(f"roster {unit_code} {week} was changed at the same time; retry") from exc
    return _roster_version(row, unit_code)


def roster_history(session: Session, unit_code: str, week: str) -> list[RosterVersion]:
    """Every version for the unit and week, oldest first (empty when never reported)."""
    unit = _unit_row(session, unit_code)
    stmt = (
        select(Roster)
        .where(Roster.unit_id == unit.id, Roster.week == week)
        .order_by(Roster.version)
    )
    return [_roster_version(r, unit_code) for r in session.scalars(stmt)]


def latest_roster(session: Session, unit_code: str, week: str) -> RosterVersion | None:
    """The version that counts, or None when the unit has not reported for `week`."""
    history = roster_history(session, unit_code, week)
    return history[-1] if history else None


def unit_roster_weeks(
    session: Session, unit_code: str, *, weeks: list[str] | None = None, limit: int = 20
) -> list[RosterVersion]:
    """The latest version of each week the unit reported for (optionally only `weeks`), newest
    week first."""
    unit = _unit_row(session, unit_code)
    newest = (
        select(Roster.week, func.max(Roster.version).label("v"))
        .where(Roster.unit_id == unit.id)
        .group_by(Roster.week)
        .subquery()
    )
    stmt = (
        select(Roster)
        .join(newest, (Roster.week == newest.c.week) & (Roster.version == newest.c.v))
        .where(Roster.unit_id == unit.id)
        .order_by(Roster.week.desc())
        .limit(limit)
    )
    if weeks is not None:
        stmt = stmt.where(Roster.week.in_(weeks))
    return [_roster_version(r, unit_code) for r in session.scalars(stmt)]


def latest_roster_until(session: Session, unit_code: str, week: str) -> RosterVersion | None:
    """The latest version of the most recent week up to and including `week` (canonical weeks
    sort as text), or None when the unit never reported before."""
    unit = _unit_row(session, unit_code)
    row = session.scalar(
        select(Roster)
        .where(Roster.unit_id == unit.id, Roster.week <= week)
        .order_by(Roster.week.desc(), Roster.version.desc())
        .limit(1)
    )
    return _roster_version(row, unit_code) if row is not None else None


def latest_rosters_for_week(session: Session, week: str) -> list[RosterVersion]:
    """The latest version of every unit that reported for `week`, by unit code."""
    newest = (
        select(Roster.unit_id, func.max(Roster.version).label("v"))
        .where(Roster.week == week)
        .group_by(Roster.unit_id)
        .subquery()
    )
    stmt = (
        select(Roster, Unit.code)
        .join(newest, (Roster.unit_id == newest.c.unit_id) & (Roster.version == newest.c.v))
        .join(Unit, Unit.id == Roster.unit_id)
        .where(Roster.week == week)
        .order_by(Unit.code)
    )
    return [_roster_version(row, code) for row, code in session.execute(stmt)]


def newest_roster(session: Session, unit_code: str) -> RosterVersion | None:
    """The unit's most recent roster of any week (the latest week, its highest version)."""
    unit = _unit_row(session, unit_code)
    row = session.scalar(
        select(Roster)
        .where(Roster.unit_id == unit.id)
        .order_by(Roster.week.desc(), Roster.version.desc())
        .limit(1)
    )
    return None if row is None else _roster_version(row, unit_code)


def units_missing_roster(session: Session, week: str) -> list[UnitInfo]:
    """Active units with no roster at all for `week`, by code."""
    reported = select(Roster.unit_id).where(Roster.week == week)
    stmt = select(Unit).where(Unit.active.is_(True), Unit.id.not_in(reported)).order_by(Unit.code)
    return [_unit_info(r) for r in session.scalars(stmt)]


# ---- duty checks ----
def record_duty_check(
    session: Session,
    unit_code: str,
    *,
    week: str,
    number: str,
    person: str,
    outcome: DutyCheckOutcome,
    key_pressed: str | None,
    detail: str | None,
    started_at: datetime,
    finished_at: datetime,
) -> DutyCheckRecord:
    """Store one 查岗 result."""
    unit = _unit_row(session, unit_code)
    row = DutyCheck(
        unit_id=unit.id,
        week=week,
        number=number,
        person=person,
        outcome=outcome,
        key_pressed=key_pressed,
        detail=(detail or "")[:200] or None,
        started_at=started_at,
        finished_at=finished_at,
    )
    session.add(row)
    session.flush()
    return _duty_check(row, unit_code)


def _duty_check(row: DutyCheck, unit_code: str) -> DutyCheckRecord:
    return DutyCheckRecord(
        row.id,
        unit_code,
        row.week,
        row.number,
        row.person,
        row.outcome,
        row.key_pressed,
        row.detail,
        row.started_at,
        row.finished_at,
    )


def list_duty_checks(
    session: Session, unit_code: str, *, limit: int = 100
) -> list[DutyCheckRecord]:
    """A unit's duty checks, newest first."""
    unit = _unit_row(session, unit_code)
    stmt = (
        select(DutyCheck)
        .where(DutyCheck.unit_id == unit.id)
        .order_by(DutyCheck.started_at.desc())
        .limit(limit)
    )
    return [_duty_check(r, unit_code) for r in session.scalars(stmt)]


def duty_checks_between(
    session: Session,
    *,
    started_from: datetime | None = None,
    started_to: datetime | None = None,
    unit_code: str | None = None,
    limit: int = 1000,
) -> list[DutyCheckRecord]:
    """Duty checks started in [from, to) of every unit (or one), newest first."""
    stmt = select(DutyCheck, Unit.code).join(Unit, Unit.id == DutyCheck.unit_id)
    if started_from is not None:
        stmt = stmt.where(DutyCheck.started_at >= started_from)
    if started_to is not None:
        stmt = stmt.where(DutyCheck.started_at < started_to)
    if unit_code is not None:
        stmt = stmt.where(Unit.code == unit_code)
    stmt = stmt.order_by(DutyCheck.started_at.desc(), DutyCheck.id).limit(limit)
    return [_duty_check(r, code) for r, code in session.execute(stmt)]


# ---- notifications ----
def add_notification(
    session: Session, unit_code: str, *, kind: str, week: str, message: str, at: datetime
) -> Notification:
    """Store one reminder about a unit."""
    unit = _unit_row(session, unit_code)
    row = RegistryNotification(
        kind=kind, unit_id=unit.id, week=week, message=message, created_at=at
    )
    session.add(row)
    session.flush()
    return Notification(row.id, kind, unit_code, week, message, row.created_at)


def list_notifications(
    session: Session, *, week: str | None = None, kind: str | None = None
) -> list[Notification]:
    """Stored reminders, oldest first."""
    stmt = (
        select(RegistryNotification, Unit.code)
        .join(Unit, Unit.id == RegistryNotification.unit_id)
        .order_by(RegistryNotification.id)
    )
    if week is not None:
        stmt = stmt.where(RegistryNotification.week == week)
    if kind is not None:
        stmt = stmt.where(RegistryNotification.kind == kind)
    return [
        Notification(n.id, n.kind, code, n.week, n.message, n.created_at)
        for n, code in session.execute(stmt)
    ]
