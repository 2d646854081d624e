"""A unit's answer checked before it joins: extension digits, the key 1, more units, replace."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from callflows import commands as c
from callflows.bridge import BridgeFlow, BridgeSettings, BridgeState
from callflows.bridge_party import ExistingLeg, PartyState
from callflows.destination import Destination
from callflows.errors import CallflowConfigError, PartyStateError
from callflows.events import AddParty, AddUnit, HangupParty, ReplaceUnit, Role
from callflows.inbound import InboundFlow
from callflows.key_prompt import KeyPrompt, PromptPhase, PromptRules
from callflows.testing import FakeRunner, PeerScript
from callflows.unit_answer import UnitAnswerRules

T0 = datetime(2026, 12, 6, 2, 0, tzinfo=UTC)
CALLER, SEAT = "+8613900000000", "8001"
U1, U2, U3 = "+8613800000001", "+8613800000002", "+8613800000003"
SWITCHBOARD = "+868334201234"
PROMPT_S = {"bridge.unit_confirm": 6.0, "bridge.unit_connecting": 2.0}
RULES = UnitAnswerRules(confirm=True, timeout_s=10.0, repeats=1)


def settings(rules: UnitAnswerRules = RULES) -> BridgeSettings:
    return BridgeSettings(unit_answer=rules)


def run_bridge(
    unit: list[str | Destination],
    peers: dict[str, PeerScript],
    rules: UnitAnswerRules = RULES,
    until_s: float = 300.0,
) -> tuple[BridgeFlow, FakeRunner]:
    flow = BridgeFlow(
        "b1", {Role.CALLER: [CALLER], Role.DISPATCHER: [SEAT], Role.UNIT: unit}, T0, settings(rules)
    )
    everyone = {CALLER: PeerScript(after_s=1.0), SEAT: PeerScript(after_s=1.0), **peers}
    runner = FakeRunner(flow, everyone, T0, prompt_seconds=PROMPT_S)
    runner.begin()
    runner.run(until_s)
    return flow, runner


def secs(runner: FakeRunner, when: datetime) -> float:
    return (when - runner.start_time).total_seconds()


def test_a_unit_that_presses_1_joins_and_until_then_hears_only_the_prompt() -> None:
    flow, runner = run_bridge([U1], {U1: PeerScript(after_s=2.0, keys=((7.0, "1"),))}, until_s=60)
    unit = flow.snapshot().party(Role.UNIT)
    assert unit.state is PartyState.CONNECTED
    attempt = unit.attempts[0]
    assert attempt.result == "answered" and attempt.confirmed_at is not None
    assert runner.hears("unit-1") == {"caller-1", "dispatcher-1"}
    assert runner.hears("caller-1") == {"unit-1", "dispatcher-1"}
    # while it was being asked, it was not in the conference, and the others heard the notice
    joins = [(t, cmd) for t, cmd in runner.commands if cmd == c.Join("unit-1", "b1")]
    assert attempt.confirmed_at is not None and joins[0][0] == attempt.confirmed_at
    notices = [(leg, p) for _, leg, p in runner.plays if p == "bridge.unit_connecting"]
    assert sorted(notices) == [("caller-1", "bridge.unit_connecting"),
                               ("dispatcher-1", "bridge.unit_connecting")]  # fmt: skip
    assert [p for _, leg, p in runner.plays if leg == "unit-1"] == ["bridge.unit_confirm"]
    # the notice stops when the unit joins
    at_join = [cmd for t, cmd in runner.commands if t == joins[0][0]]
    assert c.StopPlayback("caller-1") in at_join and c.StopPlayback("dispatcher-1") in at_join


def test_no_key_is_not_confirmed_after_one_repeat_and_the_next_number_joins() -> None:
    flow, runner = run_bridge(
        [U1, U2],
        {U1: PeerScript(after_s=2.0), U2: PeerScript(after_s=2.0, keys=((1.0, "1"),))},
    )
    unit = flow.snapshot().party(Role.UNIT)
    assert [a.result for a in unit.attempts] == ["not_confirmed", "answered"]
    assert unit.state is PartyState.CONNECTED and unit.number == U2
    first = unit.attempts[0]
    assert first.ended_at is not None and first.confirmed_at is None
    # answered ~3 s in: prompt 6 s, wait 10 s, prompt again 6 s, wait 10 s
    assert secs(runner, first.ended_at) == pytest.approx(3.05 + 32.0, abs=0.2)
    assert [p for _, leg, p in runner.plays if leg == "unit-1"] == ["bridge.unit_confirm"] * 2
    assert c.Hangup("unit-1") in [cmd for _, cmd in runner.commands]
    assert "unit-1" not in runner.hears("caller-1")


def test_another_key_is_not_confirmed_at_once_and_an_exhausted_list_is_unreachable() -> None:
    flow, runner = run_bridge([U1], {U1: PeerScript(after_s=2.0, keys=((2.0, "9"),))})
    unit = flow.snapshot().party(Role.UNIT)
    assert [a.result for a in unit.attempts] == ["not_confirmed"]
    assert unit.state is PartyState.UNREACHABLE and unit.end_reason == "not_confirmed"
    assert flow.state is BridgeState.CONNECTED  # caller and dispatcher stay
    assert secs(runner, unit.attempts[0].ended_at) == pytest.approx(5.05, abs=0.1)  # type: ignore[arg-type]


def test_hanging_up_before_the_key_is_not_confirmed() -> None:
    flow, _ = run_bridge(
        [U1, U2],
        {U1: PeerScript(after_s=2.0, hangup_after_s=3.0), U2: PeerScript(keys=((1.0, "1"),))},
    )
    unit = flow.snapshot().party(Role.UNIT)
    assert [a.result for a in unit.attempts] == ["not_confirmed", "answered"]


def test_extension_digits_go_out_after_the_delay_and_earlier_keys_are_ignored() -> None:
    rules = UnitAnswerRules(confirm=True, extension_delay_s=1.5, extension_timeout_s=40.0)
    # the switchboard answers at 3 s; its greeting "presses" 1 at 0.5 s (before the digits);
    # the person at the extension presses 1 at 20 s
    script = PeerScript(after_s=2.0, keys=((0.5, "1"), (20.0, "1")))
    flow, runner = run_bridge([Destination(SWITCHBOARD, "8001")], {SWITCHBOARD: script}, rules)
    assert [(leg, d) for _, leg, d in runner.digits_sent] == [("unit-1", "8001")]
    sent_at = runner.digits_sent[0][0]
    answered = 3.0
    assert secs(runner, sent_at) == pytest.approx(answered + 1.5 + 4 * 0.3, abs=0.01)
    unit = flow.snapshot().party(Role.UNIT)
    att = unit.attempts[0]
    assert att.number == SWITCHBOARD and att.extension == "8001"
    assert att.extension_sent_at == sent_at
    assert unit.state is PartyState.CONNECTED
    assert att.confirmed_at is not None and secs(runner, att.confirmed_at) == pytest.approx(
        answered + 20.0, abs=0.01
    )


def test_with_an_extension_the_prompt_repeats_until_the_longer_window_ends() -> None:
    rules = UnitAnswerRules(confirm=True, extension_timeout_s=40.0, extension_gap_s=3.0)
    flow, runner = run_bridge(
        [Destination(SWITCHBOARD, "8001"), U2],
        {SWITCHBOARD: PeerScript(after_s=2.0), U2: PeerScript(keys=((1.0, "1"),))},
        rules,
    )
    unit = flow.snapshot().party(Role.UNIT)
    first = unit.attempts[0]
    assert first.result == "not_confirmed" and first.extension_sent_at is not None
    window = (first.ended_at - first.extension_sent_at).total_seconds()  # type: ignore[operator]
    assert window == pytest.approx(40.0)
    played = [p for _, leg, p in runner.plays if leg == "unit-1"]
    assert len(played) == 5  # 0, 9, 18, 27, 36 s: prompt 6 s + 3 s gap, until 40 s
    assert unit.state is PartyState.CONNECTED and unit.number == U2


def test_without_confirmation_an_extension_joins_once_the_digits_are_out() -> None:
    rules = UnitAnswerRules(confirm=False)
    flow, runner = run_bridge(
        [Destination(SWITCHBOARD, "8001")], {SWITCHBOARD: PeerScript()}, rules
    )
    unit = flow.snapshot().party(Role.UNIT)
    assert unit.state is PartyState.CONNECTED
    assert unit.connected_at == runner.digits_sent[0][0]
    assert not [p for _, leg, p in runner.plays if leg == "unit-1"]


def test_inbound_call_adding_a_unit_uses_the_same_confirmation() -> None:
    inbound = InboundFlow("in1", "caller", CALLER, [SEAT])
    runner = FakeRunner(
        inbound,
        {SEAT: PeerScript(), U1: PeerScript(after_s=1.0), U2: PeerScript(keys=((2.0, "1"),))},
        T0,
        existing_legs={"caller": PeerScript()},
        prompt_seconds=PROMPT_S,
    )
    runner.begin()
    runner.run(5)
    bridge = inbound.to_bridge(runner.now, "in1", settings())
    runner.replace_flow(bridge)
    runner.execute(bridge.handle(AddUnit((U1, U2)), runner.now))
    runner.run(120)
    unit = bridge.snapshot().party(Role.UNIT)
    assert [a.result for a in unit.attempts] == ["not_confirmed", "answered"]
    assert runner.hears("caller") == {"seat-1", "unit-2"}


def test_four_parties_each_hear_the_three_others_and_a_sixth_is_refused() -> None:
    flow, runner = run_bridge([U1], {U1: PeerScript(keys=((1.0, "1"),))}, until_s=30)
    runner.peers[U2] = PeerScript(keys=((1.0, "1"),))
    runner.execute(flow.handle(AddParty((U2,)), runner.now))
    runner.run(60)
    snap = flow.snapshot()
    assert snap.party(Role.UNIT2).state is PartyState.CONNECTED
    legs = {"caller-1", "dispatcher-1", "unit-1", "unit2-1"}
    for leg in legs:
        assert runner.hears(leg) == legs - {leg}
    runner.peers[U3] = PeerScript(keys=((1.0, "1"),))
    runner.execute(flow.handle(AddParty((U3,)), runner.now))
    runner.run(90)
    assert flow.snapshot().party(Role.UNIT3).state is PartyState.CONNECTED
    with pytest.raises(PartyStateError):
        flow.handle(AddParty(("+8613800000009",)), runner.now)


def test_replace_hangs_up_the_unit_and_the_bridge_holds_while_the_new_one_is_dialled() -> None:
    flow, runner = run_bridge([U1], {U1: PeerScript(keys=((1.0, "1"),))}, until_s=30)
    # only dispatcher and unit left: replacing the unit must not end the bridge
    runner.execute(flow.handle(HangupParty(Role.CALLER), runner.now))
    runner.run(35)
    runner.peers[U2] = PeerScript(after_s=2.0, keys=((1.0, "1"),))
    runner.execute(flow.handle(ReplaceUnit((U2,)), runner.now))
    assert flow.state is BridgeState.CONNECTED
    runner.run(80)
    unit = flow.snapshot().party(Role.UNIT)
    assert [(a.number, a.result) for a in unit.attempts] == [(U1, "answered"), (U2, "answered")]
    assert unit.state is PartyState.CONNECTED and unit.number == U2
    assert runner.hears("dispatcher-1") == {"unit-2"}
    assert flow.state is BridgeState.CONNECTED


def test_replacing_a_caller_is_refused() -> None:
    flow = BridgeFlow(
        "b2", {Role.CALLER: ExistingLeg("c", CALLER), Role.DISPATCHER: ExistingLeg("s", SEAT)}, T0
    )
    flow.start(T0)
    with pytest.raises(PartyStateError):
        flow.handle(ReplaceUnit((U1,), Role.CALLER), T0)


def test_key_prompt_window_mode_and_strict_keys() -> None:
    rules = PromptRules("p", {"1": "yes"}, key_timeout_s=2.0, max_repeats=None, window_s=10.0)
    prompt = KeyPrompt("f", "leg", rules, "t")
    assert prompt.start() == [c.StartTimer("t:window", 10.0), c.Play("leg", "p", True)]
    assert prompt.on_playback_end("p") == [c.StartTimer("t:1", 2.0)]
    assert prompt.on_key("5") == [c.CancelTimer("t:1"), c.Play("leg", "p", True)]
    assert prompt.on_timer("t:window") == [c.StopPlayback("leg")]
    assert prompt.phase is PromptPhase.FAILED and prompt.invalid_keys == ["5"]
    strict = KeyPrompt("f", "leg", PromptRules("p", {"1": "yes"}, invalid_key_repeats=False))
    strict.start()
    assert strict.on_key("2") == [c.StopPlayback("leg")]
    assert strict.phase is PromptPhase.FAILED
    with pytest.raises(CallflowConfigError):
        PromptRules("p", {"1": "yes"}, max_repeats=None)
    with pytest.raises(CallflowConfigError):
        Destination(SWITCHBOARD, "80a1")
