"""Callback surveys (回访): the IVR's settings and the pure scheduling policy.

The call itself is a `KeyPromptCall` (callflows.ivr) built by `survey_call`. Scheduling is a
set of pure functions of (now, settings, history): calling hours in the county's zone, the next
attempt per outcome with back-off, and "unreached" after the last attempt. The runner (a
periodic job) stores each attempt's outcome and asks `plan_next` when to call again.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from types import MappingProxyType
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from callflows.errors import CallflowConfigError
from callflows.ivr import CallOutcome, KeyPromptCall, KeyPromptSettings

DEFAULT_SURVEY_KEYS: Mapping[str, str] = MappingProxyType(
    {"1": "satisfied", "2": "basically_satisfied", "3": "unsatisfied"}
)


def default_survey_ivr() -> KeyPromptSettings:
    """The survey IVR as shipped: "满意请按1，基本满意请按2，不满意请按3", then thanks."""
    return KeyPromptSettings(
        prompt_key="survey.question", keys=DEFAULT_SURVEY_KEYS, thanks_key="survey.thanks"
    )


def survey_call(
    attempt_id: str, number: str, ivr: KeyPromptSettings | None = None
) -> KeyPromptCall:
    """The call of one survey attempt (feed it like any flow; its result is a KeyPromptResult)."""
    return KeyPromptCall(attempt_id, number, ivr or default_survey_ivr(), role="callee")


def _aware(at: datetime) -> datetime:
    if at.tzinfo is None or at.utcoffset() is None:
        raise CallflowConfigError(f"a timezone-aware time is needed, got {at!r}")
    return at


@dataclass(frozen=True)
class CallingHours:
    """A daily window in a time zone; `start > end` means it runs across midnight."""

    start: time = time(8, 30)
    end: time = time(21, 0)
    zone: str = "Asia/Shanghai"

    def __post_init__(self) -> None:
        if self.start == self.end:
            raise CallflowConfigError("calling hours start and end are the same")
        try:
            ZoneInfo(self.zone)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise CallflowConfigError(f"unknown time zone {self.zone!r}") from exc

    def contains(self, at: datetime) -> bool:
        """True if `at` (any aware time) falls inside the window, local time."""
        local = _aware(at).astimezone(ZoneInfo(self.zone)).time()
        if self.start < self.end:
            return self.start <= local < self.end
        return local >= self.start or local < self.end

    def next_opening(self, at: datetime) -> datetime:
        """`at` itself if inside the window, else the next local `start` (in `at`'s zone)."""
        if self.contains(at):
            return at
        tz = ZoneInfo(self.zone)
        local_day = _aware(at).astimezone(tz).date()
        for offset in range(3):
            day = local_day + timedelta(days=offset)
            candidate = datetime.combine(day, self.start, tzinfo=tz)
            if candidate > at:
                return candidate.astimezone(at.tzinfo)
        raise AssertionError("a daily window opens within two days")  # pragma: no cover


def _default_delays() -> dict[CallOutcome, timedelta]:
    return {
        CallOutcome.NO_ANSWER: timedelta(minutes=30),
        CallOutcome.BUSY: timedelta(minutes=10),
        CallOutcome.FAILED: timedelta(hours=1),
        CallOutcome.NO_KEY: timedelta(hours=1),
    }


@dataclass(frozen=True)
class RetryPolicy:
    """Retries per outcome: the n-th retry waits `delays[outcome] * backoff ** (n - 1)`,
    at most `max_delay`; an outcome missing from `delays` is not retried."""

    max_attempts: int = 3
    delays: Mapping[CallOutcome, timedelta] = field(default_factory=_default_delays)
    backoff: float = 2.0
    max_delay: timedelta = timedelta(hours=12)

    def __post_init__(self) -> None:
        if self.max_attempts < 1 or self.backoff < 1:
            raise CallflowConfigError("max_attempts must be >= 1 and backoff >= 1")


@dataclass(frozen=True)
class SurveySchedule:
    """When surveys may call: delay after the incident closed, calling hours, retries."""

    hours: CallingHours = field(default_factory=CallingHours)
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    delay_after_close: timedelta = timedelta(hours=1)


class SurveyProgress(enum.StrEnum):
    """Where a survey stands after its attempts so far (the stored status has more states)."""

    SCHEDULED = "scheduled"
    ANSWERED = "answered"
    UNREACHED = "unreached"


@dataclass(frozen=True, slots=True)
class AttemptRecord:
    """One finished survey call: its outcome and when it ended. `interrupted`: our own service
    stopped during the call (not the person's doing): it does not use up an attempt."""

    outcome: CallOutcome
    ended_at: datetime
    interrupted: bool = False


@dataclass(frozen=True, slots=True)
class SurveyPlan:
    """What to do next: call at `next_attempt_at`, or nothing (answered / unreached)."""

    status: SurveyProgress
    next_attempt_at: datetime | None
    reason: str


def first_attempt_at(
    closed_at: datetime, schedule: SurveySchedule, not_before: datetime | None = None
) -> datetime:
    """When to place the first call of a survey created when its incident closed."""
    earliest = _aware(closed_at) + schedule.delay_after_close
    if not_before is not None and _aware(not_before) > earliest:
        earliest = not_before
    return schedule.hours.next_opening(earliest)


def retry_delay(outcome: CallOutcome, retry_number: int, policy: RetryPolicy) -> timedelta | None:
    """The wait before retry number `retry_number` (1-based) after `outcome`; None: no retry."""
    base = policy.delays.get(outcome)
    if base is None:
        return None
    return min(base * policy.backoff ** (retry_number - 1), policy.max_delay)


def plan_next(
    now: datetime, history: Sequence[AttemptRecord], schedule: SurveySchedule
) -> SurveyPlan:
    """Decide a survey's next step from its attempts so far (oldest first)."""
    if not history:
        return SurveyPlan(
            SurveyProgress.SCHEDULED, schedule.hours.next_opening(now), "first_attempt"
        )
    if any(a.outcome is CallOutcome.ANSWER for a in history):
        return SurveyPlan(SurveyProgress.ANSWERED, None, "answered")
    last = history[-1]
    counted = sum(1 for a in history if not a.interrupted)
    # calls our own stops cut are not the person's attempts, unless a node stops again and
    # again (more of them than attempts allowed): then they count, so a survey still ends
    over = len(history) - counted > schedule.retry.max_attempts
    if last.interrupted and not over:
        return SurveyPlan(
            SurveyProgress.SCHEDULED,
            schedule.hours.next_opening(max(_aware(now), last.ended_at)),
            "retry:interrupted",
        )
    n = len(history) if over else counted
    if n >= schedule.retry.max_attempts:
        return SurveyPlan(SurveyProgress.UNREACHED, None, f"last_attempt:{last.outcome.value}")
    delay = retry_delay(last.outcome, n, schedule.retry)
    if delay is None:
        return SurveyPlan(SurveyProgress.UNREACHED, None, f"not_retried:{last.outcome.value}")
    earliest = max(_aware(now), last.ended_at + delay)
    return SurveyPlan(
        SurveyProgress.SCHEDULED,
        schedule.hours.next_opening(earliest),
        f"retry:{last.outcome.value}",
    )
