"""The 查岗 schedule (LINKCALL_DUTY_CHECK_SCHEDULE): when spot checks are placed and on whom.

One or more rules separated by `;`, each `daily HH:MM[:SS] [all|sample=N]` or
`weekly <mon..sun> HH:MM[:SS] [all|sample=N]`, in the county's local time. `all` (the default)
checks every active unit; `sample=N` N active units drawn at random when the slot is planned.
Examples: `daily 02:00 sample=5`, `weekly sun 20:00 all`, `daily 02:00 sample=5; weekly sun
20:00 all`. An empty value schedules nothing. Bad input raises `InvalidDutyCheckSchedule`
naming the rule and what is wrong.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


class InvalidDutyCheckSchedule(ValueError):
    """LINKCALL_DUTY_CHECK_SCHEDULE could not be read."""


@dataclass(frozen=True, slots=True)
class DutyCheckRule:
    """One rule: every day (weekday None) or one ISO weekday (1-7) at `at`; `sample` None = all."""

    text: str
    at: time
    weekday: int | None = None
    sample: int | None = None

    def next_after(self, after: datetime, zone: ZoneInfo) -> datetime:
        """The first time of this rule strictly after `after` (aware), as an aware UTC-able time."""
        local = after.astimezone(zone)
        for offset in range(8):
            day = local.date() + timedelta(days=offset)
            if self.weekday is not None and day.isoweekday() != self.weekday:
                continue
            candidate = datetime.combine(day, self.at, tzinfo=zone)
            if candidate > local:
                return candidate
        raise AssertionError("a weekly rule fires within eight days")  # pragma: no cover

    def pick(self, unit_codes: Sequence[str], rng: random.Random | None = None) -> list[str]:
        """The units to check in one slot: all, or a random sample (sorted by code)."""
        codes = sorted(unit_codes)
        if self.sample is None or self.sample >= len(codes):
            return codes
        return sorted((rng or random.SystemRandom()).sample(codes, self.sample))


def _time_of(text: str, rule: str) -> time:
    parts = text.split(":")
    if len(parts) not in (2, 3) or not all(p.isdigit() and len(p) == 2 for p in parts):
        raise InvalidDutyCheckSchedule(f"{rule!r}: time must be HH:MM or HH:MM:SS, got {text!r}")
    try:
        hh, mm, ss = (int(p) for p in [*parts, "00"][:3])
        return time(hh, mm, ss)
    except ValueError as exc:
        raise InvalidDutyCheckSchedule(f"{rule!r}: {text!r} is not a time of day") from exc


def _sample_of(text: str, rule: str) -> int | None:
    if text == "all":
        return None
    name, sep, value = text.partition("=")
    if name != "sample" or not sep or not value.isdigit() or int(value) < 1:
        raise InvalidDutyCheckSchedule(
            f"{rule!r}: expected 'all' or 'sample=N' (N >= 1), got {text!r}"
        )
    return int(value)


def parse_rule(text: str) -> DutyCheckRule:
    """One rule, e.g. `daily 02:00 sample=5` or `weekly sun 20:00 all`."""
    words = text.lower().split()
    if not words or words[0] not in ("daily", "weekly"):
        raise InvalidDutyCheckSchedule(f"{text!r}: a rule starts with 'daily' or 'weekly'")
    weekday: int | None = None
    rest = words[1:]
    if words[0] == "weekly":
        if not rest or rest[0] not in WEEKDAYS:
            raise InvalidDutyCheckSchedule(
                f"{text!r}: 'weekly' needs a day, one of {', '.join(WEEKDAYS)}"
            )
        weekday = WEEKDAYS.index(rest[0]) + 1
        rest = rest[1:]
    if not rest or len(rest) > 2:
        raise InvalidDutyCheckSchedule(f"{text!r}: expected a time, then optionally all|sample=N")
    at = _time_of(rest[0], text)
    sample = _sample_of(rest[1], text) if len(rest) == 2 else None
    return DutyCheckRule(" ".join(words), at, weekday, sample)


def parse_schedule(text: str) -> tuple[DutyCheckRule, ...]:
    """Every rule of LINKCALL_DUTY_CHECK_SCHEDULE (empty: none)."""
    return tuple(parse_rule(part) for part in text.split(";") if part.strip())
