"""Whole flows on the in-memory runner: what each scripted phone hears and what is stored."""

from __future__ import annotations

from datetime import UTC, datetime

from callflows.bridge import BridgeFlow, BridgeSnapshot, BridgeState
from callflows.bridge_party import PartyState
from callflows.duty_check import DutyCheckStatus, duty_check_call, verdict
from callflows.errors import PartyStateError
from callflows.events import (
    AddUnit,
    HangupParty,
    HoldParty,
    MuteParty,
    RedialParty,
    Role,
    UnholdParty,
)
from callflows.inbound import InboundFlow, InboundState
from callflows.ivr import CallOutcome
from callflows.survey import survey_call
from callflows.testing import FakeRunner, PeerScript

T0 = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)
CALLER, SEAT = "+8613911112222", "8001"
UNIT = ("+8613800000001", "+8613800000002", "+8613800000003")


def bridge_runner(peers: dict[str, PeerScript]) -> tuple[BridgeFlow, FakeRunner]:
    flow = BridgeFlow("b1", {Role.CALLER: [CALLER], Role.DISPATCHER: [SEAT], Role.UNIT: UNIT}, T0)
    runner = FakeRunner(flow, peers, T0)
    runner.begin()
    return flow, runner


def test_three_way_call_everyone_hears_the_other_two() -> None:
    peers = {n: PeerScript(after_s=2) for n in (CALLER, SEAT, UNIT[0])}
    flow, runner = bridge_runner(peers)
    runner.run(until_s=60)
    assert flow.state is BridgeState.CONNECTED and "b1" in runner.recording
    assert runner.hears("caller-1") == {"dispatcher-1", "unit-1"}
    assert runner.hears("unit-1") == {"dispatcher-1", "caller-1"}


def test_busy_then_no_answer_then_third_number_connects() -> None:
    peers = {
        CALLER: PeerScript(after_s=3),
        SEAT: PeerScript(after_s=1),
        UNIT[0]: PeerScript(answer="busy", after_s=0.5),
        UNIT[1]: PeerScript(answer="ignore"),
        UNIT[2]: PeerScript(after_s=4),
    }
    flow, runner = bridge_runner(peers)
    runner.run(until_s=120)
    unit = flow.snapshot().party(Role.UNIT)
    assert [(a.number, a.result, a.sip_status) for a in unit.attempts] == [
        (UNIT[0], "busy", 486),
        (UNIT[1], "no_answer", None),
        (UNIT[2], "answered", 200),
    ]
    assert unit.state is PartyState.CONNECTED
    assert runner.hears("caller-1") == {"dispatcher-1", "unit-3"}
    last = runner.saves[-1]
    assert isinstance(last, BridgeSnapshot) and last == flow.snapshot()


def test_dispatcher_leaves_caller_and_unit_still_hear_each_other() -> None:
    peers = {
        CALLER: PeerScript(after_s=2),
        SEAT: PeerScript(after_s=1, hangup_after_s=30),
        UNIT[0]: PeerScript(after_s=2),
    }
    flow, runner = bridge_runner(peers)
    runner.run(until_s=300)
    assert flow.state is BridgeState.CONNECTED
    assert runner.hears("caller-1") == {"unit-1"} and runner.hears("unit-1") == {"caller-1"}
    runner.request(HangupParty(Role.UNIT), at_s=310)
    runner.run(until_s=400)
    assert flow.snapshot().state is BridgeState.ENDED and runner.hears("caller-1") == set()
    assert "b1" not in runner.recording


def test_hold_and_mute_do_what_they_say() -> None:
    peers = {n: PeerScript(after_s=1) for n in (CALLER, SEAT, UNIT[0])}
    flow, runner = bridge_runner(peers)
    runner.request(HoldParty(Role.CALLER), at_s=10)
    runner.run(until_s=11)
    assert runner.hears("caller-1") == set()
    assert runner.hears("dispatcher-1") == {"unit-1"} and runner.hears("unit-1") == {"dispatcher-1"}
    runner.request(UnholdParty(Role.CALLER), at_s=20)
    runner.request(MuteParty(Role.UNIT), at_s=21)
    runner.request(HoldParty(Role.UNIT), at_s=22)  # fine: unit is connected
    runner.request(HoldParty(Role.UNIT), at_s=23)  # already held: no-op
    runner.run(until_s=30)
    assert runner.hears("caller-1") == {"dispatcher-1"} and not runner.errors
    assert flow.snapshot().party(Role.UNIT).muted


def test_inbound_two_seats_first_wins_then_unit_added() -> None:
    inbound = InboundFlow("call-1", "in-1", CALLER, ["8001", "8002"])
    peers = {
        "8001": PeerScript(answer="ignore"),
        "8002": PeerScript(after_s=3),
        UNIT[0]: PeerScript(),
    }
    runner = FakeRunner(inbound, peers, T0, existing_legs={"in-1": PeerScript()})
    runner.begin()
    runner.run(until_s=10)
    assert inbound.state is InboundState.CONNECTED
    assert runner.hears("in-1") == {"seat-2"} and "seat-1" not in runner.hears("in-1")
    assert [a.result for a in inbound.snapshot().seat_attempts] == [
        "answered_elsewhere",
        "answered",
    ]
    bridge = inbound.to_bridge(runner.now, "br-1")
    runner.replace_flow(bridge)
    runner.request(AddUnit((UNIT[0],)), at_s=20)
    runner.run(until_s=40)
    assert runner.hears("in-1") == {"seat-2", "unit-1"}
    assert bridge.state is BridgeState.CONNECTED and runner.recording == {"call-1"}


def test_survey_wrong_key_then_right_key() -> None:
    call = survey_call("s-1", CALLER)
    peers = {CALLER: PeerScript(after_s=5, keys=((4.0, "8"), (9.0, "1")))}
    runner = FakeRunner(call, peers, T0, prompt_seconds={"survey.question": 6.0})
    runner.begin()
    runner.run()
    result = call.result()
    assert result.outcome is CallOutcome.ANSWER and result.answer == "satisfied"
    assert result.invalid_keys == ("8",) and call.finished


def test_survey_silent_answerer_is_no_key() -> None:
    call = survey_call("s-2", CALLER)
    runner = FakeRunner(call, {CALLER: PeerScript(after_s=2)}, T0)
    runner.begin()
    runner.run()
    assert call.result().outcome is CallOutcome.NO_KEY and call.result().prompts_played == 3


def test_duty_check_pass_and_fail() -> None:
    passing = duty_check_call("dc-1", UNIT[0])
    runner = FakeRunner(passing, {UNIT[0]: PeerScript(after_s=3, keys=((1.0, "1"),))}, T0)
    runner.begin()
    runner.run()
    assert verdict(passing.result()).status is DutyCheckStatus.PASSED
    failing = duty_check_call("dc-2", UNIT[1])
    runner = FakeRunner(failing, {UNIT[1]: PeerScript(answer="ignore")}, T0)
    runner.begin()
    runner.run()
    v = verdict(failing.result())
    assert v.status is DutyCheckStatus.FAILED and v.reason is CallOutcome.NO_ANSWER


def test_refused_request_is_reported_not_raised() -> None:
    peers = {n: PeerScript(after_s=1) for n in (CALLER, SEAT, UNIT[0])}
    flow, runner = bridge_runner(peers)
    runner.request(RedialParty(Role.CALLER), at_s=10)  # caller is connected: refused
    runner.run(until_s=20)
    assert len(runner.errors) == 1
    error = runner.errors[0]
    assert isinstance(error, PartyStateError) and error.party == "caller"
    assert flow.state is BridgeState.CONNECTED and ("caller-2", CALLER) not in runner.dialled


def test_seat_never_answers_fails_without_dialling_the_others() -> None:
    peers = {SEAT: PeerScript(answer="ignore"), CALLER: PeerScript(), UNIT[0]: PeerScript()}
    flow, runner = bridge_runner(peers)
    runner.run()
    assert flow.state is BridgeState.FAILED and flow.end_reason == "unreachable:dispatcher"
    assert runner.dialled == [("dispatcher-1", SEAT)]
    assert flow.ended_at is not None and (flow.ended_at - T0).total_seconds() == 20.0
