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


def test_the_stored_outcome_is_the_verdict_of_the_call() -> None:
    """What the service stores for a unit (calls/duty_check_caller.py) comes from `verdict`."""
    from calls.duty_check_caller import stored_outcome
    from storage.models.registry import DutyCheckOutcome

    passed = duty_check_call("dc-5", "+8613800000001")
    passed.start(T0)
    passed.handle(LegAnswered(LEG), at(5))
    passed.handle(DtmfReceived(LEG, "1"), at(7))
    passed.handle(PlaybackFinished(LEG, "duty_check.thanks"), at(9))
    assert stored_outcome(verdict(passed.result())) is DutyCheckOutcome.PASSED

    wrong = duty_check_call("dc-6", "+8613800000001")
    wrong.start(T0)
    wrong.handle(LegAnswered(LEG), at(5))
    for n in (1, 2):  # a wrong key, then nothing: asked twice, never confirmed
        wrong.handle(PlaybackFinished(LEG, "duty_check.prompt"), at(10 * n))
        wrong.handle(DtmfReceived(LEG, "5") if n == 1 else TimerFired(f"key:{n}"), at(10 * n + 2))
    result = wrong.result()
    assert result.invalid_keys == ("5",)
    assert stored_outcome(verdict(result)) is DutyCheckOutcome.NO_KEY

    busy = duty_check_call("dc-7", "+8613800000001")
    busy.start(T0)
    busy.handle(LegEnded(LEG, "busy", 486), at(2))
    assert stored_outcome(verdict(busy.result())) is DutyCheckOutcome.BUSY
