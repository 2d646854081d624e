"""The survey IVR: prompt, one key, repeats, thanks, outcomes and timing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from callflows import commands as c
from callflows.errors import CallflowConfigError, UnknownLegError
from callflows.events import DtmfReceived, LegAnswered, LegEnded, PlaybackFinished, TimerFired
from callflows.ivr import CallOutcome, KeyPromptCall, KeyPromptSettings
from callflows.survey import survey_call

T0 = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)
LEG = "callee-1"


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def answered() -> KeyPromptCall:
    call = survey_call("s-1", "+8613911112222")
    cmds = call.start(T0)
    assert c.Dial(LEG, "callee", "+8613911112222", 40.0) in cmds
    cmds = call.handle(LegAnswered(LEG), at(5))
    assert c.Play(LEG, "survey.question", True) in cmds
    return call


def test_key_then_thanks_then_hangup_stores_answer_and_timing() -> None:
    call = answered()
    call.handle(PlaybackFinished(LEG, "survey.question"), at(12))
    cmds = call.handle(DtmfReceived(LEG, "2"), at(14))
    assert c.CancelTimer("key:1") in cmds and c.Play(LEG, "survey.thanks", False) in cmds
    assert not call.finished
    cmds = call.handle(PlaybackFinished(LEG, "survey.thanks"), at(17))
    assert c.Hangup(LEG) in cmds
    result = call.result()
    assert (result.outcome, result.key, result.answer) == ("answer", "2", "basically_satisfied")
    assert (result.answered_at, result.key_at, result.ended_at) == (at(5), at(14), at(17))
    assert any(isinstance(x, c.Save) and x.snapshot == result for x in cmds)


def test_key_during_prompt_stops_it() -> None:
    call = answered()
    cmds = call.handle(DtmfReceived(LEG, "1"), at(7))
    assert cmds[0] == c.StopPlayback(LEG)
    assert call.result().answer == "satisfied"


def test_wrong_key_then_right_key_stores_the_right_one() -> None:
    call = answered()
    call.handle(PlaybackFinished(LEG, "survey.question"), at(12))
    cmds = call.handle(DtmfReceived(LEG, "7"), at(13))
    assert c.Play(LEG, "survey.question", True) in cmds  # asked again
    call.handle(DtmfReceived(LEG, "3"), at(15))
    call.handle(PlaybackFinished(LEG, "survey.thanks"), at(18))
    result = call.result()
    assert result.key == "3" and result.answer == "unsatisfied"
    assert result.invalid_keys == ("7",) and result.prompts_played == 2


def test_timeouts_repeat_twice_then_no_key() -> None:
    call = answered()
    plays = 1
    for n in (1, 2, 3):
        cmds = call.handle(PlaybackFinished(LEG, "survey.question"), at(10 * n))
        assert c.StartTimer(f"key:{n}", 8.0) in cmds
        cmds = call.handle(TimerFired(f"key:{n}"), at(10 * n + 8))
        plays += sum(1 for x in cmds if isinstance(x, c.Play))
    assert plays == 3  # the prompt and two repeats
    assert call.finished and call.result().outcome is CallOutcome.NO_KEY
    assert c.Hangup(LEG) in cmds and call.result().key is None


def test_stale_key_timer_is_ignored() -> None:
    call = answered()
    call.handle(PlaybackFinished(LEG, "survey.question"), at(12))
    call.handle(DtmfReceived(LEG, "9"), at(13))  # invalid: replays, key:1 cancelled
    assert call.handle(TimerFired("key:1"), at(20)) == []
    assert call.result().prompts_played == 2


@pytest.mark.parametrize(
    ("reason", "status", "outcome"),
    [
        ("busy", 486, CallOutcome.BUSY),
        ("declined", 603, CallOutcome.BUSY),
        ("timeout", 408, CallOutcome.NO_ANSWER),
        ("not_found", 404, CallOutcome.FAILED),
        ("unreachable", 503, CallOutcome.FAILED),
    ],
)
def test_dial_failures_map_to_outcomes(reason: str, status: int, outcome: CallOutcome) -> None:
    call = survey_call("s-2", "+8613911112222")
    call.start(T0)
    call.handle(LegEnded(LEG, reason, status), at(3))
    result = call.result()
    assert result.outcome is outcome and result.attempt is not None
    assert result.attempt.sip_status == status and result.ended_at == at(3)


def test_ring_timeout_is_no_answer() -> None:
    call = survey_call("s-3", "+8613911112222")
    call.start(T0)
    cmds = call.handle(TimerFired(f"ring:{LEG}"), at(40))
    assert c.CancelDial(LEG) in cmds and call.result().outcome is CallOutcome.NO_ANSWER
    assert call.handle(LegAnswered(LEG), at(40.2)) == [c.Hangup(LEG)]  # answer raced the cancel


def test_hangup_during_prompt_is_no_key() -> None:
    call = answered()
    cmds = call.handle(LegEnded(LEG, "normal_remote"), at(8))
    assert call.result().outcome is CallOutcome.NO_KEY
    assert not any(isinstance(x, c.Hangup) for x in cmds)


def test_call_limit_hangs_up() -> None:
    call = answered()
    cmds = call.handle(TimerFired("call-limit"), at(180))
    assert c.Hangup(LEG) in cmds and call.result().outcome is CallOutcome.NO_KEY


def test_configured_keys_and_unknown_leg() -> None:
    ivr = KeyPromptSettings(prompt_key="q", keys={"9": "yes"}, max_repeats=0)
    call = KeyPromptCall("s-4", "+8613911112222", ivr)
    call.start(T0)
    call.handle(LegAnswered(LEG), at(1))
    with pytest.raises(UnknownLegError, match="s-4"):
        call.handle(DtmfReceived("callee-2", "9"), at(2))
    call.handle(DtmfReceived(LEG, "1"), at(2))  # invalid, no repeats left
    assert call.result().outcome is CallOutcome.NO_KEY


def test_bad_key_map_is_refused() -> None:
    with pytest.raises(CallflowConfigError):
        KeyPromptSettings(prompt_key="q", keys={})
    with pytest.raises(CallflowConfigError):
        KeyPromptSettings(prompt_key="q", keys={"12": "x"})
