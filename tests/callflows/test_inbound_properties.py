"""Property: an inbound call always reaches a final state once every leg ended and every timer
fired, answers the caller at most once, and never connects two seats."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from callflows import commands as c
from callflows.errors import EventError
from callflows.events import EndBridge, Event, LegAnswered, LegEnded, LegRinging, TimerFired
from callflows.inbound import InboundFlow, InboundSettings, NoAnswerOutcome

T0 = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)
LEGS = ["in-1", "seat-1", "seat-2", "seat-3"]
KINDS = ["answered", "answered", "ringing", "busy", "normal_remote", "timer", "end"]


@settings(max_examples=300, deadline=None)
@given(
    steps=st.lists(st.tuples(st.sampled_from(KINDS), st.integers(0, 3)), max_size=25),
    announce=st.booleans(),
)
def test_inbound_settles(steps: list[tuple[str, int]], announce: bool) -> None:
    outcome = NoAnswerOutcome(prompt_key="busy" if announce else None)
    flow = InboundFlow("p", "in-1", "+8613911112222", ["1", "2", "3"], InboundSettings(10, outcome))
    timers: set[str] = set()
    answers: list[str] = []
    now = T0

    def run(cmds: list[c.Command]) -> None:
        for cmd in cmds:
            if isinstance(cmd, c.StartTimer):
                timers.add(cmd.timer_id)
            elif isinstance(cmd, c.CancelTimer):
                timers.discard(cmd.timer_id)
            elif isinstance(cmd, c.Answer):
                answers.append(cmd.leg_id)
            elif isinstance(cmd, c.Join) and cmd.leg_id != "in-1":
                joined.add(cmd.leg_id)

    joined: set[str] = set()
    run(flow.start(now))
    for kind, n in steps:
        now += timedelta(seconds=1)
        event: Event
        if kind == "timer":
            if not timers:
                continue
            event = TimerFired(sorted(timers)[n % len(timers)])
            timers.discard(event.timer_id)
        elif kind == "end":
            event = EndBridge()
        elif kind == "answered":
            event = LegAnswered(LEGS[n])
        elif kind == "ringing":
            event = LegRinging(LEGS[n])
        else:
            event = LegEnded(LEGS[n], kind)
        try:
            run(flow.handle(event, now))
        except EventError:
            assert isinstance(event, EndBridge)
    for leg in LEGS:
        run(flow.handle(LegEnded(leg, "normal_remote"), now))
    for timer in sorted(timers):
        run(flow.handle(TimerFired(timer), now))
    assert flow.finished
    assert len(answers) <= 1 and len(joined) <= 1
