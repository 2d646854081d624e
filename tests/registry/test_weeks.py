"""ISO weeks in the county's zone, across year ends, and shifts."""

from __future__ import annotations

from datetime import UTC, datetime, time
from zoneinfo import ZoneInfo

import pytest

from registry.duty import (
    InvalidWeek,
    coming_week,
    format_shift,
    next_week,
    on_shift,
    parse_shift_text,
    parse_week,
    week_of,
    week_start,
    weeks_in_year,
)
from storage.registry import Shift

SH = ZoneInfo("Asia/Shanghai")


def test_53_week_years() -> None:
    assert [y for y in range(2018, 2033) if weeks_in_year(y) == 53] == [2020, 2026, 2032]
    assert parse_week("2026-W53") == "2026-W53"
    assert parse_week("2020w53") == "2020-W53"
    with pytest.raises(InvalidWeek, match="52"):
        parse_week("2025-W53")
    for bad in ("2026-W00", "2026-49", "W49", "2026-W5"):
        with pytest.raises(InvalidWeek):
            parse_week(bad)


def test_week_of_uses_the_county_zone_not_utc() -> None:
    # Sunday 27 Dec 2026 16:30 UTC is Monday 28 Dec 00:30 in Shanghai: the first hour of W53.
    at = datetime(2026, 12, 27, 16, 30, tzinfo=UTC)
    assert week_of(at, SH) == "2026-W53"
    assert week_of(at, ZoneInfo("UTC")) == "2026-W52"
    assert week_start("2026-W53", SH) == datetime(2026, 12, 28, tzinfo=SH)


def test_year_boundary() -> None:
    assert next_week("2026-W52", SH) == "2026-W53"
    assert next_week("2026-W53", SH) == "2027-W01"
    assert next_week("2025-W52", SH) == "2026-W01"
    # 1 January 2027 (a Friday) still belongs to 2026-W53.
    assert week_of(datetime(2027, 1, 1, 12, tzinfo=SH), SH) == "2026-W53"
    # Friday afternoon in W52 of 2026: the coming week is W53; in W53 it is 2027-W01.
    assert coming_week(datetime(2026, 12, 25, 15, tzinfo=SH), SH) == "2026-W53"
    assert coming_week(datetime(2027, 1, 1, 15, tzinfo=SH), SH) == "2027-W01"


def test_shifts_by_day_and_hours_including_overnight() -> None:
    day = Shift(days=(1, 2, 3, 4, 5), start=time(8), end=time(18))
    night = Shift(days=(5,), start=time(18), end=time(8))
    wed_noon = datetime(2026, 12, 2, 12, tzinfo=SH)
    fri_2300 = datetime(2026, 12, 4, 23, tzinfo=SH)
    sat_0300 = datetime(2026, 12, 5, 3, tzinfo=SH)
    sat_0900 = datetime(2026, 12, 5, 9, tzinfo=SH)
    assert on_shift(day, wed_noon) and not on_shift(night, wed_noon)
    assert on_shift(night, fri_2300) and not on_shift(day, fri_2300)
    assert on_shift(night, sat_0300)
    assert not on_shift(night, sat_0900) and not on_shift(day, sat_0900)
    assert on_shift(None, sat_0900)


def test_shift_text_round_trip() -> None:
    shift = parse_shift_text("1-5 08:00-18:00")
    assert shift == Shift(days=(1, 2, 3, 4, 5), start=time(8), end=time(18))
    assert parse_shift_text(format_shift(shift)) == shift
    assert parse_shift_text("6,7") == Shift(days=(6, 7))
    assert parse_shift_text("") is None
    with pytest.raises(ValueError):
        parse_shift_text("weekdays")
