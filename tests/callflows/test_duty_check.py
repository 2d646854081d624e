"""The duty check (查岗): pass on '1', fail on no answer, busy or no key."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from callflows import commands as c
from callflows.duty_check import DutyCheckStatus, duty_check_call, verdict
from callflows.events import DtmfReceived, LegAnswered, LegEnded, PlaybackFinished, TimerFired
from callflows.ivr import CallOutcome

T0 = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)
LEG = "duty-1"


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def test_pressing_1_passes_with_times() -> None:
    call = duty_check_call("dc-1", "+8613800000001")
    assert c.Dial(LEG, "duty", "+8613800000001", 45.0) in call.start(T0)
    call.handle(LegAnswered(LEG), at(6))
    call.handle(DtmfReceived(LEG, "1"), at(9))
    call.handle(PlaybackFinished(LEG, "duty_check.thanks"), at(11))
    v = verdict(call.result())
    assert v.status is DutyCheckStatus.PASSED
    assert (v.dialed_at, v.answered_at, v.key_at, v.ended_at) == (T0, at(6), at(9), at(11))


def test_no_answer_fails() -> None:
    call = duty_check_call("dc-2", "+8613800000001")
    call.start(T0)
    call.handle(TimerFired(f"ring:{LEG}"), at(45))
    v = verdict(call.result())
    assert v.status is DutyCheckStatus.FAILED and v.reason is CallOutcome.NO_ANSWER


def test_busy_fails() -> None:
    call = duty_check_call("dc-3", "+8613800000001")
    call.start(T0)
    call.handle(LegEnded(LEG, "busy", 486), at(2))
    assert verdict(call.result()).reason is CallOutcome.BUSY


def test_no_key_fails_after_one_repeat() -> None:
    call = duty_check_call("dc-4", "+8613800000001")
    call.start(T0)
    call.handle(LegAnswered(LEG), at(5))
    for n in (1, 2):
        call.handle(PlaybackFinished(LEG, "duty_check.prompt"), at(10 * n))
        call.handle(TimerFired(f"key:{n}"), at(10 * n + 10))
    v = verdict(call.result())
    assert v.status is DutyCheckStatus.FAILED and v.reason is CallOutcome.NO_KEY
    assert call.result().prompts_played == 2
