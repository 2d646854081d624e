"""Property: whatever the leg events, a bridge settles once its legs end, and never redials a
connected party."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from callflows import commands as c
from callflows.bridge import BridgeFlow, BridgeSettings, BridgeState
from callflows.bridge_party import PartyState
from callflows.destination import Destination
from callflows.errors import EventError
from callflows.events import (
    AddParty,
    AddUnit,
    DigitsSent,
    DtmfReceived,
    EndBridge,
    Event,
    HangupParty,
    HoldParty,
    LegAnswered,
    LegEnded,
    LegRinging,
    MuteParty,
    PlaybackFinished,
    RedialParty,
    ReplaceUnit,
    Role,
    TimerFired,
    UnholdParty,
)
from callflows.unit_answer import UnitAnswerRules

T0 = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)
REASONS = ["busy", "declined", "not_found", "unreachable", "timeout", "failed", "normal_remote"]
REQUESTS: list[Callable[[Role], Event]] = [
    HangupParty,
    RedialParty,
    MuteParty,
    HoldParty,
    UnholdParty,
]

KINDS = ["answered"] * 8 + ["ringing", "timer", "timer", "end", "add_unit"] + ["request"] * 4
KINDS += ["key", "key", "played", "digits", "add_party", "replace"]  # unit answers, more units
action = st.tuples(st.sampled_from(KINDS + REASONS), st.integers(0, 20))


class Harness:
    """Feeds a bridge and keeps what a runner would know: legs dialled, timers running."""

    def __init__(self, flow: BridgeFlow) -> None:
        self.flow = flow
        self.legs: list[str] = []
        self.ended: set[str] = set()
        self.timers: set[str] = set()
        self.now = T0
        self.replacing = False
        self.execute(flow.start(T0), {})

    def feed(self, event: Event) -> None:
        self.replacing = isinstance(event, ReplaceUnit)
        self.now += timedelta(seconds=1)
        before = {r: p.state for r, p in self.flow.parties.items()}
        if isinstance(event, TimerFired):
            self.timers.discard(event.timer_id)
        if isinstance(event, LegEnded):
            self.ended.add(event.leg_id)
        self.execute(self.flow.handle(event, self.now), before)

    def execute(self, cmds: list[c.Command], before: dict[Role, PartyState]) -> None:
        for cmd in cmds:
            if isinstance(cmd, c.Dial):
                role = Role(cmd.role)
                if not self.replacing:  # a replaced unit is dialled anew under its role
                    assert before.get(role) is not PartyState.CONNECTED, f"dialled connected {role}"
                assert self.flow.parties[role].state is PartyState.DIALING
                self.legs.append(cmd.leg_id)
            elif isinstance(cmd, c.StartTimer):
                self.timers.add(cmd.timer_id)
            elif isinstance(cmd, c.CancelTimer):
                self.timers.discard(cmd.timer_id)

    def event_for(self, kind: str, n: int) -> Event | None:
        if kind == "end":
            return EndBridge()
        if kind == "add_unit":
            return AddUnit(("+8613800000009",))
        if kind == "add_party":
            return AddParty(("+8613800000008", Destination("+868334201234", "8001")))
        if kind == "replace":
            return ReplaceUnit(("+8613800000007",), [Role.UNIT, Role.UNIT2][n % 2])
        if kind == "request":
            return REQUESTS[n % len(REQUESTS)](list(Role)[n % 3])
        if kind == "timer":
            return TimerFired(sorted(self.timers)[n % len(self.timers)]) if self.timers else None
        legs = [x for x in self.legs if x not in self.ended] or self.legs
        if not legs:
            return None
        leg = legs[n % len(legs)]
        if kind == "ringing":
            return LegRinging(leg)
        if kind == "key":
            return DtmfReceived(leg, "1" if n % 3 else "5")
        if kind == "played":
            return PlaybackFinished(leg, "bridge.unit_confirm")
        if kind == "digits":
            return DigitsSent(leg, n % 4 != 0)
        if kind == "answered":
            return LegAnswered(leg)
        return LegEnded(leg, kind, None)


@settings(max_examples=300, deadline=None)
@given(
    actions=st.lists(action, max_size=40),
    all_at_once=st.booleans(),
    unit_numbers=st.integers(1, 3),
    confirm=st.booleans(),
    extension=st.booleans(),
)
def test_bridge_settles_once_all_legs_end(
    actions: list[tuple[str, int]],
    all_at_once: bool,
    unit_numbers: int,
    confirm: bool,
    extension: bool,
) -> None:
    bridge_settings = BridgeSettings.all_at_once() if all_at_once else BridgeSettings()
    bridge_settings = dataclasses.replace(
        bridge_settings, unit_answer=UnitAnswerRules(confirm=confirm)
    )
    units: list[str | Destination] = [f"+86138000000{i:02d}" for i in range(unit_numbers)]
    if extension:
        units[0] = Destination("+868334201234", "8001")
    flow = BridgeFlow(
        "p1", {Role.CALLER: ["1"], Role.DISPATCHER: ["2"], Role.UNIT: units}, T0, bridge_settings
    )
    h = Harness(flow)
    for kind, n in actions:
        event = h.event_for(kind, n)
        if event is None:
            continue
        try:
            h.feed(event)
        except EventError:
            assert kind in ("request", "end", "add_unit", "add_party", "replace"), (
                f"leg event refused: {event}"
            )
    for _ in range(30):  # every leg ends, every timer fires: bounded
        if flow.finished:
            break
        for leg in [x for x in h.legs if x not in h.ended]:
            h.feed(LegEnded(leg, "normal_remote", None))
        for timer in sorted(h.timers):
            h.feed(TimerFired(timer))
    assert flow.state in (BridgeState.ENDED, BridgeState.FAILED)
    assert all(p.state is not PartyState.CONNECTED for p in flow.parties.values())
    assert flow.snapshot().ended_at is not None
