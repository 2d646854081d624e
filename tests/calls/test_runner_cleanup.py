"""A runner that ends hangs up all its legs at once, each bounded.

Three peers that never answer their BYE must cost the ending one bound (HANGUP_WAIT_S), not one
each: the service's stop waits STOP_TIMEOUT_S for every call, and a call whose cleanup outlives
it is never stored ended (the deadlines audit). Fakes stand in for the SIP legs only.
"""

from __future__ import annotations

import asyncio

import pytest

import calls.runner
from calls.runner import FlowRunner
from calls.runner_legs import LegBinding


class _Flow:
    flow_id = "cleanup-test"


class _SilentPeerLeg:
    """A SIP leg whose BYE is never answered: `hangup` waits until it is cancelled."""

    def __init__(self, name: str, log: list[str]) -> None:
        self.name, self.log, self.ended = name, log, False

    async def hangup(self) -> None:
        self.log.append(f"bye {self.name}")
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            self.log.append(f"gave up {self.name}")
            raise

    async def wait_ended(self, timeout: float) -> bool:
        return False


async def test_legs_are_hung_up_at_once_and_each_bye_is_bounded(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(calls.runner, "HANGUP_WAIT_S", 0.2)
    runner = FlowRunner(_Flow(), ua=object(), media=object())  # type: ignore[arg-type]
    log: list[str] = []
    for role in ("caller", "dispatcher", "unit"):
        binding = LegBinding(f"{role}-1", role, answered=True)
        binding.sip = _SilentPeerLeg(role, log)  # type: ignore[assignment]
        runner._legs[binding.leg_id] = binding

    async with asyncio.timeout(5.0):  # bounded even if a BYE were not
        await runner._cleanup()

    # every BYE went out before the first one was given up on (one after another, three
    # silent peers took three bounds: bye, gave up, bye, gave up, ...)
    assert log[:3] == ["bye caller", "bye dispatcher", "bye unit"], log
    assert sorted(log[3:]) == ["gave up caller", "gave up dispatcher", "gave up unit"], log
    assert all(b.released for b in runner._legs.values())


class _BrokenLeg(_SilentPeerLeg):
    async def hangup(self) -> None:
        self.log.append(f"bye {self.name}")
        raise RuntimeError("transport gone")


async def test_one_legs_unexpected_failure_does_not_stop_the_others_or_the_release() -> None:
    runner = FlowRunner(_Flow(), ua=object(), media=object())  # type: ignore[arg-type]
    log: list[str] = []
    for role, kind in (("caller", _BrokenLeg), ("unit", _SilentPeerLeg)):
        binding = LegBinding(f"{role}-1", role, answered=True)
        binding.sip = kind(role, log)  # type: ignore[assignment]
        runner._legs[binding.leg_id] = binding
    calls.runner.HANGUP_WAIT_S, saved = 0.1, calls.runner.HANGUP_WAIT_S
    try:
        async with asyncio.timeout(5.0):
            await runner._cleanup()  # does not raise
    finally:
        calls.runner.HANGUP_WAIT_S = saved
    assert log[:2] == ["bye caller", "bye unit"], log
    assert all(b.released for b in runner._legs.values())
