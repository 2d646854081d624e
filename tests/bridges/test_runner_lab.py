"""The bridge flow on the real stack: our UA and media engine, Kamailio, three baresip phones.

caller 400 Hz, dispatcher 1000 Hz, unit 1800 Hz (issue 5). Each phone must hear the other two
and not itself; the recording's mixed track holds all three tones, each party track its own.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from callflows.bridge import BridgeFlow, BridgeState
from callflows.events import BASE_ROLES, EndBridge, HangupParty, Role
from calls.runner import FlowRunner, NullHooks
from lab import ports
from lab.audio import tone_report
from lab.baresip import BaresipPhone
from lab.kamailio import Kamailio
from recordings import RecordingInfo
from telephony.media.engine import MediaEngine
from telephony.sip.ua import UAConfig, UserAgent

pytestmark = [pytest.mark.integration, pytest.mark.slow]

TONES = {Role.CALLER: 400.0, Role.DISPATCHER: 1000.0, Role.UNIT: 1800.0}
USERS = {Role.CALLER: "2001", Role.DISPATCHER: "2002", Role.UNIT: "2003"}
HEARD_MIN_DB = -30.0
OWN_MAX_DB = -50.0


class RecordingHooks(NullHooks):
    def __init__(self) -> None:
        self.snapshots: list[object] = []
        self.finished: list[tuple[str, RecordingInfo | None, str | None]] = []

    def on_save(self, snapshot: object) -> None:
        self.snapshots.append(snapshot)

    def on_recording_finished(
        self, recording_id: str, info: RecordingInfo | None, error: str | None
    ) -> None:
        self.finished.append((recording_id, info, error))


@pytest.fixture
async def stack(
    kamailio: Kamailio, lab_users: dict[str, str]
) -> AsyncIterator[tuple[UserAgent, MediaEngine]]:
    rtp = ports.rtp_range(200)
    ua = UserAgent(
        UAConfig(
            listen_host="127.0.0.1",
            listen_port=ports.sip_port(),
            registrar=("127.0.0.1", kamailio.udp_port),
            user="1000",
            password=lab_users["1000"],
            domain=kamailio.domain,
        )
    )
    media = MediaEngine("127.0.0.1", (rtp.lo, rtp.hi))
    await media.start()
    await ua.start()
    try:
        yield ua, media
    finally:
        await ua.stop()
        await media.stop()
        ports.release(rtp)


async def _wait_state(flow: BridgeFlow, state: BridgeState, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while flow.snapshot().state is not state:
        if time.monotonic() > deadline:
            raise AssertionError(f"bridge stayed {flow.snapshot().state}, wanted {state}")
        await asyncio.sleep(0.1)


def _phones(factory: Callable[..., BaresipPhone]) -> dict[Role, BaresipPhone]:
    return {role: factory(USERS[role], tone_hz=TONES[role]) for role in BASE_ROLES}


async def test_three_way_bridge_each_hears_the_other_two_and_is_recorded(
    stack: tuple[UserAgent, MediaEngine],
    phone_factory: Callable[..., BaresipPhone],
    tmp_path: Path,
) -> None:
    ua, media = stack
    phones = _phones(phone_factory)
    flow = BridgeFlow("b1", {role: [USERS[role]] for role in BASE_ROLES}, datetime.now(UTC))
    hooks = RecordingHooks()
    runner = FlowRunner(flow, ua=ua, media=media, hooks=hooks, recordings_root=tmp_path / "rec")
    task = asyncio.create_task(runner.run())
    await _wait_state(flow, BridgeState.CONNECTED, 20)
    await asyncio.sleep(4.0)
    await runner.request(EndBridge())
    async with asyncio.timeout(20):
        await task

    snap = flow.snapshot()
    assert snap.state is BridgeState.ENDED
    for phone in phones.values():
        phone.wait_closed(10)  # baresip writes the WAV's header when the call closes
    for role, phone in phones.items():
        recs = phone.received_recordings()
        assert recs, f"{role} recorded nothing"
        levels = tone_report(recs[-1], TONES.values(), start=1.0)
        for other, hz in TONES.items():
            if other is role:
                assert levels[hz] < OWN_MAX_DB, f"{role} hears itself: {levels}"
            else:
                assert levels[hz] > HEARD_MIN_DB, f"{role} does not hear {other}: {levels}"

    ((_rec_id, info, error),) = hooks.finished
    assert error is None and info is not None
    assert set(info.tracks) == {"mixed", "caller", "dispatcher", "unit"}
    mixed = tone_report(info.tracks["mixed"].path, TONES.values(), start=1.0)
    assert all(level > HEARD_MIN_DB for level in mixed.values()), mixed
    for role in BASE_ROLES:
        track = info.tracks[role.value]
        levels = tone_report(track.path, TONES.values(), start=1.0)
        assert levels[TONES[role]] > HEARD_MIN_DB, f"{role} track: {levels}"
        assert hashlib.sha256(track.path.read_bytes()).hexdigest() == track.sha256
    assert info.duration_s > 3.0


async def test_dispatcher_leaves_and_caller_and_unit_still_hear_each_other(
    stack: tuple[UserAgent, MediaEngine],
    phone_factory: Callable[..., BaresipPhone],
    tmp_path: Path,
) -> None:
    ua, media = stack
    phones = _phones(phone_factory)
    flow = BridgeFlow("b2", {role: [USERS[role]] for role in BASE_ROLES}, datetime.now(UTC))
    runner = FlowRunner(flow, ua=ua, media=media, recordings_root=tmp_path / "rec")
    task = asyncio.create_task(runner.run())
    await _wait_state(flow, BridgeState.CONNECTED, 20)
    await asyncio.sleep(1.0)
    await runner.request(HangupParty(Role.DISPATCHER))
    await asyncio.sleep(3.0)
    assert flow.snapshot().state is BridgeState.CONNECTED
    await runner.request(EndBridge())
    async with asyncio.timeout(20):
        await task
    phones[Role.CALLER].wait_closed(10)  # baresip writes the WAV's header when the call closes
    caller_recs = phones[Role.CALLER].received_recordings()
    # the last 2.5 s: dispatcher gone, the unit still heard
    dur = _duration(caller_recs[-1])
    tail = tone_report(caller_recs[-1], TONES.values(), start=dur - 2.5)
    assert tail[TONES[Role.UNIT]] > HEARD_MIN_DB, tail
    assert tail[TONES[Role.DISPATCHER]] < OWN_MAX_DB, tail


def _duration(path: Path) -> float:
    import wave

    with wave.open(str(path)) as w:
        return w.getnframes() / w.getframerate()
