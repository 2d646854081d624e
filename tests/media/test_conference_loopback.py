"""Three plain RTP phones in one conference on loopback: each hears the other two, never itself."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Mapping, Sequence
from dataclasses import replace

import pytest

from telephony.media import MediaEngine, RtpEndpoint
from telephony.types import Codec
from tests.media.rtp_peer import LossyRelay, PacedPeer, level_db, max_frame_jump_db, tone_pcm

TONES = {"caller": 500.0, "seat": 1100.0, "unit": 1900.0}


class ListTap:
    """A test recorder: keeps every frame it is given."""

    def __init__(self) -> None:
        self.mixed: list[bytes] = []
        self.tracks: dict[str, list[bytes]] = {}

    def write(self, mixed: bytes, tracks: Mapping[str, bytes]) -> None:
        self.mixed.append(mixed)
        for role, frame in tracks.items():
            self.tracks.setdefault(role, []).append(frame)


async def _three_way(
    engine: MediaEngine, codec: Codec, seconds: float = 2.0, lossy: str | None = None
) -> tuple[dict[str, PacedPeer], dict[str, RtpEndpoint], ListTap, LossyRelay | None]:
    conf = engine.create_conference("three-way")
    tap = ListTap()
    conf.add_tap(tap)
    peers: dict[str, PacedPeer] = {}
    eps: dict[str, RtpEndpoint] = {}
    relay = None
    for role, freq in TONES.items():
        peer = PacedPeer(role, tone_pcm(freq), codec)
        peer.bind()
        ep = await engine.open_endpoint(role)
        target = ("127.0.0.1", ep.local_port)
        if role == lossy:
            relay = LossyRelay(0.05)
            relay.start(target)
            target = relay.peer_side.getsockname()
            relay_port = relay.engine_side.getsockname()[1]
            media = replace(peer.media_for(ep.local_port), remote_port=relay_port)
        else:
            media = peer.media_for(ep.local_port)
        ep.configure(media)
        conf.add(ep, role)
        peer.start(target)
        peers[role], eps[role] = peer, ep
    await asyncio.sleep(seconds)
    for peer in peers.values():
        await peer.stop()
    return peers, eps, tap, relay


def _assert_hears_others_not_self(heard: bytes, own: str) -> None:
    own_db = level_db(heard, TONES[own])
    for other, freq in TONES.items():
        if other != own:
            other_db = level_db(heard, freq)
            assert other_db > -20.0, f"{own} hears {other} at only {other_db:.1f} dBFS"
            assert other_db - own_db >= 30.0, f"{own} hears itself at {own_db:.1f} dBFS"


@pytest.mark.parametrize("codec", [Codec.PCMU, Codec.PCMA])
async def test_each_party_hears_the_other_two_and_not_itself(
    engine: MediaEngine, codec: Codec
) -> None:
    peers, eps, tap, _ = await _three_way(engine, codec)
    for role, peer in peers.items():
        heard = peer.audio(skip_s=0.3)
        assert len(heard) >= 2 * 8000 * 1.2, f"{role} received only {len(heard) // 320} frames"
        assert {r.packet.payload_type for r in peer.received} == {codec.payload_type}
        _assert_hears_others_not_self(heard, role)
    mixed = b"".join(tap.mixed[20:])
    for role, freq in TONES.items():
        assert level_db(mixed, freq) > -20.0
        track = b"".join(tap.tracks[role][20:])
        assert level_db(track, freq) > -20.0
        for other, other_freq in TONES.items():
            if other != role:
                assert level_db(track, freq) - level_db(track, other_freq) >= 30.0
    for ep in eps.values():
        assert ep.stats.packets_lost == 0
        assert ep.stats.packets_received >= 80


async def test_loss_on_one_leg_shows_in_stats_and_others_hear_no_burst(engine: MediaEngine) -> None:
    peers, eps, _, relay = await _three_way(engine, Codec.PCMU, seconds=4.0, lossy="caller")
    assert relay is not None and relay.dropped > 0
    stats = eps["caller"].stats
    assert stats.packets_lost >= relay.dropped * 0.8, (stats, relay.dropped)
    assert stats.concealed >= 1
    for role in ("seat", "unit"):
        peer = peers[role]
        audio = [r for r in peer.received if r.packet.payload_type == 0]
        times = [r.arrival for r in audio][10:]
        gaps = sorted(b - a for a, b in itertools.pairwise(times))
        assert 0.019 < gaps[len(gaps) // 2] < 0.021, f"{role}: median gap {gaps[len(gaps) // 2]}"
        # never a burst: ticks run on absolute deadlines and a late one is skipped, so any
        # three packets span more than one tick (a catch-up burst would pack them together)
        spans = [c - a for a, c in zip(times, times[2:], strict=False)]
        assert min(spans) > 0.019, f"{role}: 3 packets within {min(spans) * 1000:.1f} ms"
        heard = peer.audio(skip_s=0.3)
        assert max_frame_jump_db(heard) < 10.0  # concealment fades, never a click of catch-up
        assert level_db(heard, TONES["caller"]) > -20.0


class BrokenTap:
    def write(self, mixed: bytes, tracks: Mapping[str, bytes]) -> None:
        raise OSError("disk gone")


async def test_a_failing_tap_is_detached_and_the_call_goes_on(engine: MediaEngine) -> None:
    conf = engine.create_conference("t")
    broken, good = BrokenTap(), ListTap()
    conf.add_tap(broken)
    conf.add_tap(good)
    peer = PacedPeer("caller", tone_pcm(500))
    peer.bind()
    ep = await engine.open_endpoint("caller")
    ep.configure(peer.media_for(ep.local_port))
    conf.add(ep, "caller")
    peer.start(("127.0.0.1", ep.local_port))
    await asyncio.sleep(0.4)
    await peer.stop()
    assert conf.failed_taps == [broken]
    assert len(good.mixed) >= 15 and conf.error is None


class FailsLater(ListTap):
    """Records four ticks, then its disk fails."""

    def write(self, mixed: bytes, tracks: Mapping[str, bytes]) -> None:
        if len(self.mixed) == 4:
            raise OSError("disk gone")
        super().write(mixed, tracks)


async def test_a_tap_failing_mid_call_costs_the_other_taps_no_tick(engine: MediaEngine) -> None:
    conf = engine.create_conference("t")
    before, failing, after = ListTap(), FailsLater(), ListTap()
    for tap in (before, failing, after):
        conf.add_tap(tap)
    ep = await engine.open_endpoint("caller")
    conf.add(ep, "caller")
    await asyncio.sleep(0.3)
    assert conf.failed_taps == [failing] and len(failing.mixed) == 4
    # the tap after the failing one got every tick the one before it got (the recording of
    # the other taps is not a frame short where the failing tap was detached)
    assert len(after.mixed) == len(before.mixed) >= 10


async def test_a_failing_tick_is_recorded_on_the_conference(
    engine: MediaEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    conf = engine.create_conference("t")
    ep = await engine.open_endpoint("caller")
    other = await engine.open_endpoint("other")
    conf.add(ep, "caller")

    def broken() -> bytes:
        raise RuntimeError("injected fault")

    monkeypatch.setattr(ep, "pull", broken)
    await asyncio.sleep(0.1)
    assert isinstance(conf.error, RuntimeError)
    assert engine.ticker.stats.failures == 1  # once: the conference is no longer driven
    assert other in engine.ticker  # everything else still is


class OrderedListTap(ListTap):
    """A test recorder taking the frames in role order (`OrderedFrameTap`)."""

    def __init__(self) -> None:
        super().__init__()
        self.role_tuples: list[tuple[str, ...]] = []

    def write_frames(self, mixed: bytes, roles: tuple[str, ...], frames: Sequence[bytes]) -> None:
        self.role_tuples.append(roles)
        self.write(mixed, dict(zip(roles, frames, strict=True)))


async def test_taps_in_role_order_get_the_frames_a_mapping_tap_gets(engine: MediaEngine) -> None:
    conf = engine.create_conference("two-taps")
    by_map, in_order = ListTap(), OrderedListTap()
    conf.add_tap(by_map)
    conf.add_tap(in_order)
    peers = []
    for role in ("caller", "seat"):
        peer = PacedPeer(role, tone_pcm(TONES[role]))
        peer.bind()
        ep = await engine.open_endpoint(role)
        ep.configure(peer.media_for(ep.local_port))
        conf.add(ep, role)
        peer.start(("127.0.0.1", ep.local_port))
        peers.append(peer)
    await asyncio.sleep(0.3)
    conf.mute(ep)  # the seat: still recorded, its own track
    await asyncio.sleep(0.3)
    conf.remove_tap(in_order)
    await asyncio.sleep(0.1)
    for peer in peers:
        await peer.stop()
    ticks = len(in_order.mixed)
    assert ticks >= 20 and len(by_map.mixed) > ticks  # removed: fed no more
    assert in_order.mixed == by_map.mixed[:ticks]
    for role in ("caller", "seat"):
        n = len(in_order.tracks[role])
        assert n >= 10 and in_order.tracks[role] == by_map.tracks[role][:n]
        track = b"".join(in_order.tracks[role][-10:])
        other = TONES["seat" if role == "caller" else "caller"]
        assert level_db(track, TONES[role]) - level_db(track, other) >= 30.0  # its own voice
    assert len(in_order.role_tuples) == ticks  # fed in role order, every tick
    assert len({id(r) for r in in_order.role_tuples}) <= 4  # one tuple per plan, not per tick
