"""Inbound calls: seats rung at once, first answer wins, no-answer outcomes, hand-over."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from callflows import commands as c
from callflows.bridge import BridgeState
from callflows.bridge_party import PartyState
from callflows.errors import CallflowConfigError, PartyStateError, UnknownLegError
from callflows.events import (
    AddUnit,
    EndBridge,
    HoldParty,
    LegAnswered,
    LegEnded,
    LegRinging,
    PlaybackFinished,
    Role,
    TimerFired,
)
from callflows.inbound import InboundFlow, InboundSettings, InboundState, NoAnswerOutcome

T0 = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def new_call(settings: InboundSettings | None = None) -> tuple[InboundFlow, list[c.Command]]:
    flow = InboundFlow("call-1", "in-1", "+8613911112222", ["8001", "8002"], settings)
    return flow, flow.start(T0)


def test_rings_all_seats_and_first_answer_wins() -> None:
    flow, cmds = new_call()
    assert [(d.leg_id, d.number) for d in cmds if isinstance(d, c.Dial)] == [
        ("seat-1", "8001"),
        ("seat-2", "8002"),
    ]
    flow.handle(LegRinging("seat-1"), at(1))
    cmds = flow.handle(LegAnswered("seat-2"), at(4))
    assert c.CancelDial("seat-1") in cmds
    assert cmds.index(c.Answer("in-1")) < cmds.index(c.Join("in-1", "call-1"))
    assert c.Join("seat-2", "call-1") in cmds and c.StartRecording("call-1") in cmds
    snap = flow.snapshot()
    assert snap.state is InboundState.CONNECTED and snap.seat_number == "8002"
    assert [a.result for a in snap.seat_attempts] == ["answered_elsewhere", "answered"]


def test_second_answer_racing_the_cancel_is_hung_up() -> None:
    flow, _ = new_call()
    flow.handle(LegAnswered("seat-1"), at(3))
    assert flow.handle(LegAnswered("seat-2"), at(3.05))[0] == c.Hangup("seat-2")
    assert flow.state is InboundState.CONNECTED


def test_nobody_answers_rejects_with_stored_reason() -> None:
    flow, _ = new_call(InboundSettings(ring_deadline_s=20))
    flow.handle(LegEnded("seat-1", "busy", 486), at(2))
    cmds = flow.handle(TimerFired("ring:seat-2"), at(20))
    assert c.CancelDial("seat-2") in cmds and c.Reject("in-1", 480) in cmds
    snap = flow.snapshot()
    assert snap.state is InboundState.UNANSWERED
    assert snap.end_reason == "no_dispatcher_answered" and snap.ended_at == at(20)


def test_nobody_answers_with_announcement() -> None:
    outcome = NoAnswerOutcome(reason="all_seats_busy", prompt_key="inbound.busy")
    flow, _ = new_call(InboundSettings(ring_deadline_s=20, no_answer=outcome))
    flow.handle(LegEnded("seat-1", "declined", 603), at(1))
    cmds = flow.handle(LegEnded("seat-2", "busy", 486), at(2))
    assert c.Answer("in-1") in cmds and c.Play("in-1", "inbound.busy", False) in cmds
    cmds = flow.handle(PlaybackFinished("in-1", "inbound.busy"), at(8))
    assert c.CancelTimer("announce") in cmds and c.Hangup("in-1") in cmds
    snap = flow.snapshot()
    assert snap.state is InboundState.UNANSWERED and snap.end_reason == "all_seats_busy"
    assert snap.ended_at == at(8)  # the call's end is stored, not only its reason


def test_announcement_whose_end_never_comes_is_cut_at_its_limit() -> None:
    """A prompt whose end is never reported (and a caller who stays on the line) does not keep
    the call open: after `prompt_limit_s` the caller is hung up, the call ends unanswered."""
    outcome = NoAnswerOutcome(reason="all_seats_busy", prompt_key="inbound.busy",
                              prompt_limit_s=45)  # fmt: skip
    flow, _ = new_call(InboundSettings(ring_deadline_s=20, no_answer=outcome))
    flow.handle(LegEnded("seat-1", "declined", 603), at(1))
    cmds = flow.handle(LegEnded("seat-2", "busy", 486), at(2))
    assert c.StartTimer("announce", 45) in cmds
    assert flow.state is InboundState.ANNOUNCING
    cmds = flow.handle(TimerFired("announce"), at(47))
    assert c.Hangup("in-1") in cmds
    snap = flow.snapshot()
    assert snap.state is InboundState.UNANSWERED and snap.end_reason == "all_seats_busy"
    assert snap.ended_at == at(47)
    assert flow.handle(PlaybackFinished("in-1", "inbound.busy"), at(48)) == []  # late: ignored


def test_caller_hanging_up_during_the_announcement_stops_its_limit() -> None:
    outcome = NoAnswerOutcome(prompt_key="inbound.busy")
    flow, _ = new_call(InboundSettings(ring_deadline_s=20, no_answer=outcome))
    flow.handle(TimerFired("ring:seat-1"), at(20))
    flow.handle(TimerFired("ring:seat-2"), at(20))
    cmds = flow.handle(LegEnded("in-1", "normal_remote"), at(25))
    assert c.CancelTimer("announce") in cmds
    assert flow.state is InboundState.UNANSWERED and flow.ended_at == at(25)
    assert flow.end_reason == "no_dispatcher_answered"


def test_caller_gives_up_while_ringing_cancels_seats() -> None:
    flow, _ = new_call()
    cmds = flow.handle(LegEnded("in-1", "cancelled", 487), at(5))
    assert {x.leg_id for x in cmds if isinstance(x, c.CancelDial)} == {"seat-1", "seat-2"}
    assert flow.state is InboundState.ENDED and flow.end_reason == "caller_abandoned"


def test_dispatcher_hangs_up_ends_call_and_recording() -> None:
    flow, _ = new_call()
    flow.handle(LegAnswered("seat-1"), at(3))
    cmds = flow.handle(LegEnded("seat-1", "normal_remote"), at(60))
    assert c.Hangup("in-1") in cmds and c.StopRecording("call-1") in cmds
    assert flow.end_reason == "dispatcher_hung_up"


def test_end_request_and_unknown_leg() -> None:
    flow, _ = new_call()
    flow.handle(LegAnswered("seat-1"), at(3))
    with pytest.raises(UnknownLegError, match="seat-7"):
        flow.handle(LegAnswered("seat-7"), at(4))
    with pytest.raises(PartyStateError, match="to_bridge"):
        flow.handle(HoldParty(Role.CALLER), at(4))
    cmds = flow.handle(EndBridge(), at(5))
    assert c.Hangup("in-1") in cmds and c.Hangup("seat-1") in cmds


def test_hand_over_to_bridge_then_add_unit() -> None:
    flow, _ = new_call()
    flow.handle(LegAnswered("seat-1"), at(3))
    bridge = flow.to_bridge(at(30), "br-9")
    assert flow.finished and flow.state is InboundState.HANDED_OVER
    cmds = bridge.start(at(30))
    assert not any(isinstance(x, c.StartRecording) for x in cmds)
    assert bridge.state is BridgeState.CONNECTED
    bridge.handle(AddUnit(("+8613800000001", "+8613800000002")), at(31))
    bridge.handle(LegEnded("unit-1", "busy", 486), at(32))
    bridge.handle(LegAnswered("unit-2"), at(36))
    snap = bridge.snapshot()
    assert snap.party(Role.UNIT).state is PartyState.CONNECTED
    assert snap.party(Role.DISPATCHER).number == "8001"
    assert {p.state for p in snap.parties} == {PartyState.CONNECTED}


def test_to_bridge_before_connected_is_refused() -> None:
    flow, _ = new_call()
    with pytest.raises(PartyStateError):
        flow.to_bridge(at(1))


def test_no_seats_is_a_config_error() -> None:
    with pytest.raises(CallflowConfigError):
        InboundFlow("x", "in", "1", [])
