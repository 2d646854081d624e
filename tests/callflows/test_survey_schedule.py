"""Survey scheduling: calling hours in the county's zone, back-off, unreached."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from callflows.errors import CallflowConfigError
from callflows.ivr import CallOutcome
from callflows.survey import (
    AttemptRecord,
    CallingHours,
    RetryPolicy,
    SurveyProgress,
    SurveySchedule,
    first_attempt_at,
    plan_next,
    retry_delay,
)

SH = ZoneInfo("Asia/Shanghai")
HOURS = CallingHours()


def sh(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 12, day, hour, minute, tzinfo=SH)


@pytest.mark.parametrize(
    ("local", "inside"),
    [((8, 29), False), ((8, 30), True), ((20, 59), True), ((21, 0), False), ((3, 0), False)],
)
def test_default_window_in_shanghai(local: tuple[int, int], inside: bool) -> None:
    assert HOURS.contains(sh(1, *local)) is inside
    assert HOURS.contains(sh(1, *local).astimezone(UTC)) is inside  # same instant in UTC


def test_next_opening_after_closing_is_next_morning_across_midnight() -> None:
    late = sh(31, 22, 15)  # 31 Dec 22:15 local = 14:15 UTC
    opening = HOURS.next_opening(late.astimezone(UTC))
    assert opening == datetime(2027, 1, 1, 8, 30, tzinfo=SH)
    assert opening.tzinfo is UTC  # returned in the caller's zone
    assert HOURS.next_opening(sh(2, 1, 0)) == sh(2, 8, 30)  # early morning: same day
    inside = sh(2, 12, 0)
    assert HOURS.next_opening(inside) == inside


def test_window_running_across_midnight() -> None:
    night = CallingHours(start=time(20, 0), end=time(2, 0))
    assert night.contains(sh(1, 23, 0)) and night.contains(sh(2, 1, 59))
    assert not night.contains(sh(2, 2, 0))
    assert night.next_opening(sh(2, 3, 0)) == sh(2, 20, 0)


def test_other_zone_window() -> None:
    london = CallingHours(start=time(9, 0), end=time(17, 0), zone="Europe/London")
    noon_utc = datetime(2026, 7, 1, 12, 0, tzinfo=UTC)  # 13:00 BST
    assert london.contains(noon_utc)
    evening = datetime(2026, 7, 1, 16, 30, tzinfo=UTC)  # 17:30 BST: closed
    assert london.next_opening(evening) == datetime(2026, 7, 2, 8, 0, tzinfo=UTC)


def test_bad_hours_and_naive_times_are_refused() -> None:
    with pytest.raises(CallflowConfigError):
        CallingHours(start=time(9), end=time(9))
    with pytest.raises(CallflowConfigError):
        CallingHours(zone="Mars/Olympus")
    with pytest.raises(CallflowConfigError):
        HOURS.contains(datetime(2026, 1, 1, 12))


def test_first_attempt_waits_for_delay_and_window() -> None:
    schedule = SurveySchedule(delay_after_close=timedelta(hours=1))
    assert first_attempt_at(sh(1, 10, 0), schedule) == sh(1, 11, 0)
    assert first_attempt_at(sh(1, 20, 30), schedule) == sh(2, 8, 30)
    assert first_attempt_at(sh(1, 10, 0), schedule, not_before=sh(3, 9, 0)) == sh(3, 9, 0)


def test_backoff_schedule_then_unreached() -> None:
    schedule = SurveySchedule(retry=RetryPolicy(max_attempts=3))
    history = [AttemptRecord(CallOutcome.NO_ANSWER, sh(1, 10, 0))]
    plan = plan_next(sh(1, 10, 0), history, schedule)
    assert plan.status is SurveyProgress.SCHEDULED and plan.next_attempt_at == sh(1, 10, 30)
    history.append(AttemptRecord(CallOutcome.BUSY, sh(1, 10, 31)))
    plan = plan_next(sh(1, 10, 31), history, schedule)
    assert plan.next_attempt_at == sh(1, 10, 51)  # busy: 10 min, second retry doubles it
    history.append(AttemptRecord(CallOutcome.NO_ANSWER, sh(1, 10, 52)))
    plan = plan_next(sh(1, 10, 52), history, schedule)
    assert plan.status is SurveyProgress.UNREACHED and plan.next_attempt_at is None
    assert plan.reason == "last_attempt:no_answer"


def test_retry_lands_in_next_window() -> None:
    history = [AttemptRecord(CallOutcome.NO_ANSWER, sh(1, 20, 50))]
    plan = plan_next(sh(1, 20, 50), history, SurveySchedule())
    assert plan.next_attempt_at == sh(2, 8, 30)


def test_answered_stops_and_unlisted_outcome_is_not_retried() -> None:
    answered = [AttemptRecord(CallOutcome.ANSWER, sh(1, 10, 0))]
    assert plan_next(sh(1, 10, 0), answered, SurveySchedule()).status is SurveyProgress.ANSWERED
    no_failed = RetryPolicy(delays={CallOutcome.BUSY: timedelta(minutes=5)})
    failed = [AttemptRecord(CallOutcome.FAILED, sh(1, 10, 0))]
    plan = plan_next(sh(1, 10, 0), failed, SurveySchedule(retry=no_failed))
    assert plan.status is SurveyProgress.UNREACHED and plan.reason == "not_retried:failed"


def test_delay_is_capped() -> None:
    policy = RetryPolicy(max_attempts=10, max_delay=timedelta(hours=2))
    assert retry_delay(CallOutcome.FAILED, 1, policy) == timedelta(hours=1)
    assert retry_delay(CallOutcome.FAILED, 5, policy) == timedelta(hours=2)
    assert retry_delay(CallOutcome.ANSWER, 1, policy) is None


def test_no_history_calls_at_next_opening() -> None:
    plan = plan_next(sh(1, 6, 0), [], SurveySchedule())
    assert plan.status is SurveyProgress.SCHEDULED and plan.next_attempt_at == sh(1, 8, 30)


def test_a_call_cut_by_our_own_stop_does_not_use_up_an_attempt() -> None:
    """Two unanswered calls, then the service stopped during the third: the person is called
    again as soon as the hours allow (before: the survey ended `unreached`), and the next real
    attempt is the third."""
    schedule = SurveySchedule(retry=RetryPolicy(max_attempts=3))
    history = [
        AttemptRecord(CallOutcome.NO_ANSWER, sh(1, 10, 0)),
        AttemptRecord(CallOutcome.NO_ANSWER, sh(1, 10, 30)),
        AttemptRecord(CallOutcome.FAILED, sh(1, 11, 0), interrupted=True),
    ]
    plan = plan_next(sh(1, 11, 0), history, schedule)
    assert (plan.status, plan.next_attempt_at, plan.reason) == (
        SurveyProgress.SCHEDULED, sh(1, 11, 0), "retry:interrupted"
    )  # fmt: skip
    late = [*history[:2], AttemptRecord(CallOutcome.FAILED, sh(1, 21, 5), interrupted=True)]
    assert plan_next(sh(1, 21, 5), late, schedule).next_attempt_at == sh(2, 8, 30)
    history.append(AttemptRecord(CallOutcome.NO_ANSWER, sh(1, 11, 5)))
    plan = plan_next(sh(1, 11, 5), history, schedule)
    assert plan.status is SurveyProgress.UNREACHED and plan.reason == "last_attempt:no_answer"
    retry = plan_next(sh(1, 11, 5), [history[0], history[2], history[3]], schedule)
    assert retry.next_attempt_at == sh(1, 12, 5)  # the second real attempt's back-off: 2 x 30 min


def test_a_node_stopping_again_and_again_still_ends_the_survey() -> None:
    schedule = SurveySchedule(retry=RetryPolicy(max_attempts=3))
    cut = [AttemptRecord(CallOutcome.FAILED, sh(1, 10, i), interrupted=True) for i in range(4)]
    plan = plan_next(sh(1, 10, 5), cut, schedule)
    assert plan.status is SurveyProgress.UNREACHED and plan.reason == "last_attempt:failed"
