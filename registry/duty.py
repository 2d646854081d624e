"""The duty registry's rules: ISO weeks in the county's zone, shifts and the dial list.

Weeks are ISO 8601 weeks written `2026-W49`, Monday 00:00 to Monday 00:00 in the county's time
zone (Asia/Shanghai). Some years have 53 weeks (2020, 2026): `2026-W53` runs from Monday
28 December 2026 to Sunday 3 January 2027.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from registry.numbers import DialPolicy, NumberError
from storage import registry as repo
from storage.registry import RosterVersion, Shift

MIN_YEAR, MAX_YEAR = 1970, 2999
_WEEK = re.compile(r"^(?P<year>\d{4})-?W(?P<week>\d{2})$")


class InvalidWeek(ValueError):
    """The text is not an ISO week that exists."""


def parse_week(text: str) -> str:
    """Validate `2026-W49` (or `2026W49`) and return its canonical form; InvalidWeek otherwise."""
    match = _WEEK.match(text.strip().upper())
    if not match:
        raise InvalidWeek(f"{text!r} is not an ISO week like 2026-W49")
    year, week = int(match["year"]), int(match["week"])
    if not MIN_YEAR <= year <= MAX_YEAR:
        # the far ends of the calendar overflow date arithmetic (0000-W01 was a 500)
        raise InvalidWeek(f"{text!r}: the year must be {MIN_YEAR} to {MAX_YEAR}")
    try:
        date.fromisocalendar(year, week, 1)
    except ValueError as exc:
        raise InvalidWeek(f"{year} has no week {week} (it has {weeks_in_year(year)})") from exc
    return f"{year:04d}-W{week:02d}"


def weeks_in_year(year: int) -> int:
    """52 or 53: the ISO week number of 28 December is the year's last week."""
    return date(year, 12, 28).isocalendar().week


def week_of(at: datetime, zone: ZoneInfo) -> str:
    """The ISO week that the aware instant `at` falls in, seen from the county's zone."""
    if at.tzinfo is None:
        raise ValueError("week_of needs an aware datetime")
    iso = at.astimezone(zone).isocalendar()
    return f"{iso.year:04d}-W{iso.week:02d}"


def week_start(week: str, zone: ZoneInfo) -> datetime:
    """Monday 00:00 of `week` in the county's zone (aware)."""
    canonical = parse_week(week)
    day = date.fromisocalendar(int(canonical[:4]), int(canonical[6:]), 1)
    return datetime.combine(day, time(0, 0), tzinfo=zone)


def next_week(week: str, zone: ZoneInfo) -> str:
    """The week after `week` (crosses year ends, including 53-week years)."""
    return week_of(week_start(week, zone) + timedelta(days=7, hours=12), zone)


def coming_week(now: datetime, zone: ZoneInfo) -> str:
    """The week after the one `now` is in: what the Friday reminder asks units to report."""
    return next_week(week_of(now, zone), zone)


def on_shift(shift: Shift | None, local: datetime) -> bool:
    """Is someone with `shift` on duty at the local wall-clock time `local`?

    No shift means the whole week. `days` are ISO weekdays (1 = Monday); empty means every day.
    Hours are [start, end); when end <= start the shift runs overnight into the next day and
    `days` names the day it starts.
    """
    if shift is None:
        return True
    days = set(shift.days) or set(range(1, 8))
    start, end = shift.start, shift.end
    if start is None or end is None:
        return local.isoweekday() in days
    now_t = local.time().replace(tzinfo=None)
    if start < end:
        return local.isoweekday() in days and start <= now_t < end
    yesterday = (local.isoweekday() - 2) % 7 + 1
    return (local.isoweekday() in days and now_t >= start) or (yesterday in days and now_t < end)


@dataclass(frozen=True, slots=True)
class DialEntry:
    """One number to try, with who answers it."""

    number: str
    role: str  # staff | leader | fallback
    name: str
    order: int | None = None


def dial_list(
    roster: RosterVersion | None, fallback: str | None, at: datetime, zone: ZoneInfo
) -> list[DialEntry]:
    """Staff on duty at `at` by their order, then the leader, then the unit's fallback.

    A number already in the list is not repeated (someone on staff who is also the leader is
    dialled once, at the earlier place).
    """
    local = at.astimezone(zone)
    entries: list[DialEntry] = []
    if roster is not None:
        for person in sorted(roster.staff, key=lambda s: s.order):
            if on_shift(person.shift, local):
                entries.append(DialEntry(person.phone, "staff", person.name, person.order))
        entries.append(DialEntry(roster.leader_phone, "leader", roster.leader_name))
    if fallback:
        entries.append(DialEntry(fallback, "fallback", "值班总机 / unit switchboard"))
    seen: set[str] = set()
    unique: list[DialEntry] = []
    for entry in entries:
        if entry.number not in seen:
            seen.add(entry.number)
            unique.append(entry)
    return unique


@dataclass(frozen=True, slots=True)
class DialTarget:
    """One entry of a unit's dial list as the dial policy sees it: `dial` is what goes in the
    request URI, or None with `refused` saying why linkcall may not dial it; `extension` the
    digits keyed in by DTMF after the answer (a landline behind a switchboard)."""

    entry: DialEntry
    dial: str | None
    display: str
    refused: str | None = None
    extension: str | None = None

    @property
    def label(self) -> str:
        """Who answers this number, for the call record: `staff: 张三`."""
        return f"{self.entry.role}: {self.entry.name}"


@dataclass(frozen=True, slots=True)
class UnitDialList:
    """Whom to dial for a unit at a time, in order, read from its latest roster of that week."""

    unit_code: str
    at: datetime
    week: str
    roster_version: int | None
    targets: tuple[DialTarget, ...]
    active: bool = True  # a deactivated unit is not offered for bridges


def unit_dial_list(
    session: Session, unit_code: str, at: datetime, zone: ZoneInfo, policy: DialPolicy
) -> UnitDialList:
    """The one unit dial list (NotFound: unknown unit): staff on duty at `at`, the leader, the
    fallback, each checked by the dial policy. The bridge's unit leg, the dial-list endpoint
    and the duty check all read it here."""
    unit = repo.get_unit(session, unit_code)
    week = week_of(at, zone)
    roster = repo.latest_roster(session, unit_code, week)
    targets = []
    for entry in dial_list(roster, unit.fallback_number, at, zone):
        try:
            number = policy.check(entry.number)
        except NumberError as exc:
            targets.append(DialTarget(entry, None, entry.number, exc.reason))
            continue
        targets.append(DialTarget(entry, number.dial, number.display, extension=number.post_dial))
    return UnitDialList(
        unit_code=unit_code,
        at=at,
        week=week,
        roster_version=roster.version if roster else None,
        targets=tuple(targets),
        active=unit.active,
    )


_SHIFT = re.compile(
    r"^\s*(?:(?P<days>[1-7](?:\s*[-,]\s*[1-7])*))?\s*"
    r"(?:(?P<start>\d{1,2}:\d{2})\s*-\s*(?P<end>\d{1,2}:\d{2}))?\s*$"
)


def parse_shift_text(text: str) -> Shift | None:
    """Read the spreadsheet form `1-5 08:00-18:00`, `6,7`, `18:00-08:00` ('' = whole week)."""
    if not text or not text.strip():
        return None
    match = _SHIFT.match(text)
    if not match or not (match["days"] or match["start"]):
        raise ValueError(f"shift {text!r} is not like '1-5 08:00-18:00'")
    days: list[int] = []
    for part in (match["days"] or "").replace(" ", "").split(","):
        if not part:
            continue
        lo, _, hi = part.partition("-")
        days.extend(range(int(lo), int(hi or lo) + 1))
    start = _hhmm(match["start"]) if match["start"] else None
    end = _hhmm(match["end"]) if match["end"] else None
    return Shift(days=tuple(sorted(set(days))), start=start, end=end)


def _hhmm(text: str) -> time:
    hours, minutes = (int(x) for x in text.split(":"))
    if hours == 24 and minutes == 0:
        return time(23, 59, 59)
    if not (0 <= hours < 24 and 0 <= minutes < 60):
        raise ValueError(f"{text!r} is not a time of day")
    return time(hours, minutes)


def format_shift(shift: Shift | None) -> str:
    """The spreadsheet form of a shift ('' for the whole week)."""
    if shift is None:
        return ""
    parts = []
    if shift.days:
        parts.append(",".join(str(d) for d in shift.days))
    if shift.start and shift.end:
        parts.append(f"{shift.start:%H:%M}-{shift.end:%H:%M}")
    return " ".join(parts)
