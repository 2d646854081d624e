"""Property: a prompt-and-key call always finishes once its leg ends, never plays the prompt
more than 1 + max_repeats times, and stores only an accepted key."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from callflows import commands as c
from callflows.events import (
    DtmfReceived,
    Event,
    LegAnswered,
    LegEnded,
    LegRinging,
    PlaybackFinished,
    TimerFired,
)
from callflows.survey import DEFAULT_SURVEY_KEYS, survey_call

T0 = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)
LEG = "callee-1"
EVENTS: list[Event] = [
    LegRinging(LEG),
    LegAnswered(LEG),
    PlaybackFinished(LEG, "survey.question"),
    PlaybackFinished(LEG, "survey.thanks"),
    LegEnded(LEG, "busy", 486),
    LegEnded(LEG, "normal_remote"),
    *[DtmfReceived(LEG, d) for d in "1234*#"],
]


@settings(max_examples=300, deadline=None)
@given(
    steps=st.lists(st.one_of(st.sampled_from(EVENTS), st.integers(0, 5)), max_size=30),
)
def test_call_finishes_and_respects_repeats(steps: list[Event | int]) -> None:
    call = survey_call("p", "+8613911112222")
    timers: set[str] = set()
    plays = 0
    now = T0

    def run(cmds: list[c.Command]) -> None:
        nonlocal plays
        for cmd in cmds:
            if isinstance(cmd, c.StartTimer):
                timers.add(cmd.timer_id)
            elif isinstance(cmd, c.CancelTimer):
                timers.discard(cmd.timer_id)
            elif isinstance(cmd, c.Play) and cmd.prompt_key == "survey.question":
                plays += 1

    run(call.start(now))
    for step in steps:
        now += timedelta(seconds=1)
        if isinstance(step, int):
            if not timers:
                continue
            timer = sorted(timers)[step % len(timers)]
            timers.discard(timer)
            step = TimerFired(timer)
        run(call.handle(step, now))
    now += timedelta(seconds=1)
    run(call.handle(LegEnded(LEG, "normal_remote"), now))
    assert call.finished and call.result().outcome is not None
    assert plays <= 3 and call.result().prompts_played == plays
    result = call.result()
    assert result.key is None or result.key in DEFAULT_SURVEY_KEYS
    assert (result.key is not None) == (result.outcome == "answer")
