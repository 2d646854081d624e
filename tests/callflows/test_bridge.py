"""Bridge policies, driven by plain function calls with an injected time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from callflows import commands as c
from callflows.bridge import BridgeFlow, BridgeSettings, BridgeState
from callflows.bridge_party import ExistingLeg, PartyState
from callflows.errors import (
    CallflowConfigError,
    FlowFinishedError,
    PartyStateError,
    UnknownLegError,
)
from callflows.events import (
    AddUnit,
    DtmfReceived,
    EndBridge,
    HangupParty,
    HoldParty,
    LegAnswered,
    LegEnded,
    LegRinging,
    MuteParty,
    RedialParty,
    Role,
    TimerFired,
    UnholdParty,
)

T0 = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)
UNIT_LIST = ("+8613800000001", "+8613800000002", "+8613800000003")


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def dials(cmds: list[c.Command]) -> list[tuple[str, str]]:
    return [(d.leg_id, d.number) for d in cmds if isinstance(d, c.Dial)]


def new_bridge(settings: BridgeSettings | None = None) -> tuple[BridgeFlow, list[c.Command]]:
    flow = BridgeFlow(
        "b1",
        {Role.CALLER: ["+8613900000000"], Role.DISPATCHER: ["8001"], Role.UNIT: UNIT_LIST},
        T0,
        settings,
    )
    return flow, flow.start(T0)


def connect_all(flow: BridgeFlow) -> None:
    flow.handle(LegAnswered("dispatcher-1"), at(2))
    flow.handle(LegAnswered("caller-1"), at(5))
    flow.handle(LegAnswered("unit-1"), at(6))


def test_default_order_dials_dispatcher_first_then_caller_and_unit() -> None:
    flow, cmds = new_bridge()
    assert dials(cmds) == [("dispatcher-1", "8001")]
    assert flow.state is BridgeState.DIALING
    cmds = flow.handle(LegAnswered("dispatcher-1"), at(2))
    assert c.Join("dispatcher-1", "b1") in cmds
    assert dials(cmds) == [("caller-1", "+8613900000000"), ("unit-1", UNIT_LIST[0])]
    flow.handle(LegAnswered("unit-1"), at(4))
    snap = flow.snapshot()
    assert snap.state is BridgeState.CONNECTED and snap.connected_at == at(4)
    assert snap.party(Role.UNIT).state is PartyState.CONNECTED


def test_connected_starts_recording_once_and_cancels_deadline() -> None:
    flow, _ = new_bridge()
    flow.handle(LegAnswered("dispatcher-1"), at(2))
    cmds = flow.handle(LegAnswered("caller-1"), at(5))
    assert c.StartRecording("b1") in cmds and c.CancelTimer("bridge-deadline") in cmds
    cmds = flow.handle(LegAnswered("unit-1"), at(6))
    assert not any(isinstance(x, c.StartRecording) for x in cmds)
    assert c.Join("unit-1", "b1") in cmds


def test_all_at_once_dials_three_parties() -> None:
    _, cmds = new_bridge(BridgeSettings.all_at_once())
    assert [leg for leg, _ in dials(cmds)] == ["dispatcher-1", "caller-1", "unit-1"]


def test_strict_sequence_dials_unit_last() -> None:
    stages = ((Role.DISPATCHER,), (Role.CALLER,), (Role.UNIT,))
    flow, _ = new_bridge(BridgeSettings(dial_stages=stages))
    assert dials(flow.handle(LegAnswered("dispatcher-1"), at(1))) == [
        ("caller-1", "+8613900000000")
    ]
    assert dials(flow.handle(LegAnswered("caller-1"), at(3)))[0][0] == "unit-1"


def test_unit_escalation_busy_then_no_answer_then_third_connects() -> None:
    flow, _ = new_bridge()
    flow.handle(LegAnswered("dispatcher-1"), at(1))
    flow.handle(LegAnswered("caller-1"), at(2))
    cmds = flow.handle(LegEnded("unit-1", "busy", 486), at(3))
    assert dials(cmds) == [("unit-2", UNIT_LIST[1])]
    flow.handle(LegRinging("unit-2"), at(4))
    cmds = flow.handle(TimerFired("ring:unit-2"), at(28))
    assert c.CancelDial("unit-2") in cmds
    assert dials(cmds) == [("unit-3", UNIT_LIST[2])]
    flow.handle(LegEnded("unit-2", "cancelled", 487), at(28))  # the cancel's echo: harmless
    flow.handle(LegAnswered("unit-3"), at(31))
    unit = flow.snapshot().party(Role.UNIT)
    assert unit.state is PartyState.CONNECTED and unit.number == UNIT_LIST[2]
    got = [(a.number, a.result, a.sip_status, a.started_at, a.ended_at) for a in unit.attempts]
    assert got == [
        (UNIT_LIST[0], "busy", 486, at(1), at(3)),
        (UNIT_LIST[1], "no_answer", None, at(3), at(28)),
        (UNIT_LIST[2], "answered", 200, at(28), at(31)),
    ]
    assert unit.attempts[1].rang is True


def test_late_answer_on_timed_out_leg_is_hung_up() -> None:
    flow, _ = new_bridge()
    flow.handle(LegAnswered("dispatcher-1"), at(1))
    flow.handle(TimerFired("ring:unit-1"), at(26))
    assert flow.handle(LegAnswered("unit-1"), at(26.1))[0] == c.Hangup("unit-1")
    assert flow.snapshot().party(Role.UNIT).leg_id is None


def test_unit_unreachable_before_connect_fails_the_bridge() -> None:
    flow, _ = new_bridge()
    flow.handle(LegAnswered("dispatcher-1"), at(1))
    for i, reason in enumerate(["busy", "declined", "not_found"], start=1):
        cmds = flow.handle(LegEnded(f"unit-{i}", reason, None), at(1 + i))
    assert flow.state is BridgeState.FAILED and flow.end_reason == "unreachable:unit"
    assert c.Hangup("dispatcher-1") in cmds and c.CancelDial("caller-1") in cmds
    assert flow.snapshot().party(Role.CALLER).end_reason == "bridge_failed"


def test_auth_failure_stops_escalation() -> None:
    flow, _ = new_bridge()
    flow.handle(LegAnswered("dispatcher-1"), at(1))
    flow.handle(LegAnswered("caller-1"), at(2))
    cmds = flow.handle(LegEnded("unit-1", "auth_failed", 403), at(3))
    assert dials(cmds) == []
    assert c.Notify("b1", "party.unreachable", "unit", "auth_failed") in cmds
    assert flow.state is BridgeState.CONNECTED  # caller and dispatcher keep talking


def test_dispatcher_leaves_caller_and_unit_stay() -> None:
    flow, _ = new_bridge()
    connect_all(flow)
    cmds = flow.handle(LegEnded("dispatcher-1", "normal_remote", None), at(60))
    assert flow.state is BridgeState.CONNECTED
    assert not any(isinstance(x, c.Hangup) for x in cmds)
    assert flow.snapshot().party(Role.DISPATCHER).state is PartyState.LEFT


def test_under_two_parties_ends_and_hangs_up_the_last() -> None:
    flow, _ = new_bridge()
    connect_all(flow)
    flow.handle(LegEnded("dispatcher-1", "normal_remote", None), at(60))
    cmds = flow.handle(LegEnded("caller-1", "normal_remote", None), at(90))
    assert flow.state is BridgeState.ENDED and flow.end_reason == "fewer_than_two_parties"
    assert c.Hangup("unit-1") in cmds and c.StopRecording("b1") in cmds
    assert flow.snapshot().ended_at == at(90)


def test_drop_and_redial_unit() -> None:
    flow, _ = new_bridge()
    connect_all(flow)
    assert flow.handle(HangupParty(Role.UNIT), at(10))[0] == c.Hangup("unit-1")
    assert flow.state is BridgeState.CONNECTED
    flow.handle(LegEnded("unit-1", "normal_local", None), at(10.2))  # echo of our BYE
    cmds = flow.handle(RedialParty(Role.UNIT), at(20))
    assert dials(cmds) == [("unit-2", UNIT_LIST[0])]
    flow.handle(LegAnswered("unit-2"), at(25))
    unit = flow.snapshot().party(Role.UNIT)
    assert unit.state is PartyState.CONNECTED and [a.leg_id for a in unit.attempts] == [
        "unit-1",
        "unit-2",
    ]


def test_redial_connected_party_is_refused_and_named() -> None:
    flow, _ = new_bridge()
    connect_all(flow)
    with pytest.raises(PartyStateError, match=r"redial.*connected.*b1.*unit"):
        flow.handle(RedialParty(Role.UNIT), at(10))


def test_hold_caller_while_dispatcher_briefs_unit() -> None:
    flow, _ = new_bridge()
    connect_all(flow)
    assert flow.handle(HoldParty(Role.CALLER), at(10))[0] == c.Hold("caller-1")
    assert flow.snapshot().party(Role.CALLER).held
    assert flow.handle(HoldParty(Role.CALLER), at(11)) == []  # already held: harmless
    assert flow.handle(UnholdParty(Role.CALLER), at(30))[0] == c.Unhold("caller-1")
    assert flow.handle(MuteParty(Role.UNIT), at(31))[0] == c.Mute("unit-1")
    assert flow.snapshot().party(Role.UNIT).muted


def test_hold_of_party_not_connected_is_an_error() -> None:
    flow, _ = new_bridge()
    with pytest.raises(PartyStateError) as info:
        flow.handle(HoldParty(Role.CALLER), at(1))
    assert info.value.flow_id == "b1" and info.value.party == "caller"


def test_dtmf_for_unknown_leg_is_an_error() -> None:
    flow, _ = new_bridge()
    with pytest.raises(UnknownLegError, match="unit-9"):
        flow.handle(DtmfReceived("unit-9", "1"), at(1))


def test_deadline_fails_a_bridge_stuck_dialing() -> None:
    flow, cmds = new_bridge(BridgeSettings(dial_deadline_s=60))
    assert c.StartTimer("bridge-deadline", 60) in cmds
    flow.handle(LegAnswered("dispatcher-1"), at(1))
    cmds = flow.handle(TimerFired("bridge-deadline"), at(60))
    assert flow.state is BridgeState.FAILED and flow.end_reason == "deadline"
    assert c.CancelDial("caller-1") in cmds and c.Hangup("dispatcher-1") in cmds


def test_end_bridge_then_requests_are_refused() -> None:
    flow, _ = new_bridge()
    connect_all(flow)
    cmds = flow.handle(EndBridge(), at(50))
    assert {x.leg_id for x in cmds if isinstance(x, c.Hangup)} == {
        "dispatcher-1",
        "caller-1",
        "unit-1",
    }
    assert flow.state is BridgeState.ENDED
    assert flow.handle(LegEnded("unit-1", "normal_local", None), at(51)) == []
    with pytest.raises(FlowFinishedError):
        flow.handle(MuteParty(Role.CALLER), at(52))


def test_every_change_is_saved() -> None:
    flow, cmds = new_bridge()
    saves = [x for x in cmds if isinstance(x, c.Save)]
    assert len(saves) == 1 and saves[0].snapshot == flow.snapshot()


def test_inbound_variant_adds_unit_later() -> None:
    flow = BridgeFlow(
        "in-7",
        {
            Role.CALLER: ExistingLeg("in-7-caller", "+8613911112222"),
            Role.DISPATCHER: ExistingLeg("in-7-seat-2", "8002"),
        },
        T0,
        conference_id="in-7",
        recording_active=True,
    )
    cmds = flow.start(T0)
    assert flow.state is BridgeState.CONNECTED
    assert c.Join("in-7-caller", "in-7") in cmds and dials(cmds) == []
    assert not any(isinstance(x, c.StartRecording) for x in cmds)
    cmds = flow.handle(AddUnit(("+8613800000009",)), at(30))
    assert dials(cmds) == [("unit-1", "+8613800000009")]
    flow.handle(LegAnswered("unit-1"), at(35))
    assert flow.snapshot().party(Role.UNIT).state is PartyState.CONNECTED


def test_bad_settings_are_refused() -> None:
    with pytest.raises(CallflowConfigError):
        BridgeSettings(dial_stages=((Role.CALLER,), (Role.UNIT,)))
    with pytest.raises(CallflowConfigError):
        BridgeFlow("b", {Role.CALLER: []}, T0)


@pytest.mark.parametrize(
    "reason", ["declined", "not_found", "unreachable", "timeout", "rejected", "incompatible", "odd"]
)
def test_any_failure_but_auth_moves_to_next_number(reason: str) -> None:
    flow, _ = new_bridge()
    flow.handle(LegAnswered("dispatcher-1"), at(1))
    cmds = flow.handle(LegEnded("unit-1", reason, None), at(2))
    assert dials(cmds) == [("unit-2", UNIT_LIST[1])]
    assert flow.snapshot().party(Role.UNIT).attempts[0].result == reason


def test_an_event_the_bridge_does_not_know_is_refused_by_its_name_only() -> None:
    """A bug that hands a bridge a foreign event is reported by the event's type: its fields
    (a dial list of phone numbers) would otherwise reach the error log in full."""
    from dataclasses import dataclass

    @dataclass(frozen=True)
    class Stray:
        numbers: tuple[str, ...] = ("+8613912345601",)

    flow, _ = new_bridge()
    with pytest.raises(TypeError, match="not a bridge event: Stray") as raised:
        flow.handle(Stray(), at(1))  # type: ignore[arg-type]
    assert "13912345601" not in str(raised.value)
