"""One leg over loopback: symmetric RTP, SSRC changes, DTMF on every path, playback, hold."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import math
import socket
import wave
from array import array
from dataclasses import replace
from pathlib import Path

import pytest

from telephony.media import (
    EndpointClosed,
    LegStats,
    MediaEngine,
    PlaybackOutcome,
    Prompt,
    RtpEndpoint,
)
from telephony.media.dtmf import TelephoneEvent
from telephony.media.g711 import audioop
from telephony.media.inband import dtmf_tone
from telephony.media.rtcp import ReceiverReport, SenderReport, parse_compound
from telephony.media.rtp import RtpPacket, pack_header
from telephony.types import Codec, Direction, DtmfDigit, NegotiatedMedia
from tests.media.rtp_peer import DTMF_PT, PacedPeer, level_db, tone_pcm


async def _leg(
    engine: MediaEngine, peer: PacedPeer, *, dtmf: bool = True, inband: bool | None = None
) -> RtpEndpoint:
    peer.bind()
    ep = await engine.open_endpoint(peer.name, inband_dtmf=inband)
    ep.configure(peer.media_for(ep.local_port, dtmf=dtmf))
    peer.start(("127.0.0.1", ep.local_port))
    return ep


async def _digits(ep: RtpEndpoint, count: int, timeout: float = 5.0) -> list[DtmfDigit]:
    async with asyncio.timeout(timeout):
        return [await ep.digits.get() for _ in range(count)]


async def test_packets_from_other_addresses_are_ignored(engine: MediaEngine) -> None:
    peer = PacedPeer("caller", tone_pcm(700))
    ep = await _leg(engine, peer)
    intruder = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    intruder.bind(("127.0.0.2", 0))
    try:
        for seq in range(20):
            intruder.sendto(
                pack_header(0, seq, seq * 160, 99, False) + b"\x00" * 160,
                ("127.0.0.1", ep.local_port),
            )
        await asyncio.sleep(0.5)
    finally:
        intruder.close()
        await peer.stop()
    stats = ep.stats
    assert stats.rejected_source == 20
    assert stats.packets_received == peer.sent or stats.packets_received >= 20
    assert stats.ssrc_changes == 0


async def test_latches_once_to_a_nat_rewritten_port(engine: MediaEngine) -> None:
    peer = PacedPeer("caller", tone_pcm(700))
    peer.bind()
    ep = await engine.open_endpoint("caller")
    ep.configure(replace(peer.media_for(ep.local_port), remote_port=9))  # SDP says :9
    peer.start(("127.0.0.1", ep.local_port))
    await asyncio.sleep(0.4)
    other = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    other.bind(("127.0.0.1", 0))
    other.sendto(pack_header(0, 1, 1, 5, False) + b"\xff" * 160, ("127.0.0.1", ep.local_port))
    await asyncio.sleep(0.1)
    other.close()
    await peer.stop()
    assert ep.stats.rejected_source == 1
    assert len(peer.received) >= 10  # symmetric RTP: we answer where the packets come from


async def test_ssrc_change_is_tolerated_and_loss_is_not_invented(engine: MediaEngine) -> None:
    peer = PacedPeer("a", tone_pcm(700))
    ep = await _leg(engine, peer)
    await asyncio.sleep(0.3)
    await peer.pause()
    first = peer.sent
    peer.start(("127.0.0.1", ep.local_port))  # the phone restarts its stream: new SSRC and seq
    await asyncio.sleep(0.3)
    heard_before = len(peer.received)
    await asyncio.sleep(0.2)
    await peer.stop()
    stats = ep.stats
    assert stats.ssrc_changes == 1
    assert stats.packets_lost == 0
    # the new source's first packet waits for a second one in sequence (RFC 3550 A.1 probation)
    assert peer.sent - 1 <= stats.packets_received <= peer.sent and peer.sent > first
    assert len(peer.received) > heard_before  # and we keep talking to it


async def test_rfc4733_info_and_inband_digits_form_one_stream(engine: MediaEngine) -> None:
    pcm = b"".join(dtmf_tone(d, 100) + bytes(1600 * 2) for d in "47")
    peer = PacedPeer("caller", pcm + bytes(16000 * 2))
    ep = await _leg(engine, peer, inband=True)
    got = await _digits(ep, 2)  # in-band from the audio
    peer.send_digit("9")  # RFC 4733 ...
    got += await _digits(ep, 1)
    ep.inject_dtmf(DtmfDigit("9", "info", got[-1].at + 0.05))  # ... and the same press by INFO
    ep.inject_dtmf(DtmfDigit("#", "info", got[-1].at + 0.9))
    got += await _digits(ep, 1)
    await peer.stop()
    assert [(d.digit, d.source) for d in got] == [
        ("4", "inband"),
        ("7", "inband"),
        ("9", "rfc4733"),
        ("#", "info"),
    ]
    assert ep.digits.get_nowait() is None
    assert ep.stats.dtmf_duplicates == 1


async def test_inband_detection_is_off_when_rfc4733_was_agreed(engine: MediaEngine) -> None:
    peer = PacedPeer("caller", dtmf_tone("1", 200) + bytes(8000))
    ep = await _leg(engine, peer)
    await asyncio.sleep(0.5)
    await peer.stop()
    assert ep.digits.get_nowait() is None


async def test_we_send_rfc4733_events_in_the_media_stream(engine: MediaEngine) -> None:
    peer = PacedPeer("caller", tone_pcm(700))
    ep = await _leg(engine, peer)
    await asyncio.sleep(0.1)
    await ep.send_dtmf("5", duration_ms=100)
    await ep.send_dtmf("#", duration_ms=60)
    await asyncio.sleep(0.1)
    await peer.stop()
    events = [r.packet for r in peer.received if r.packet.payload_type == DTMF_PT]
    parsed = [TelephoneEvent.parse(p.payload) for p in events]
    assert [p.event for p in parsed] == [5] * 7 + [11] * 5
    assert [p.marker for p in events] == [True] + [False] * 6 + [True] + [False] * 4
    assert len({p.timestamp for p in events}) == 2
    assert sum(e.end for e in parsed) == 6
    audio_ts = [r.packet.timestamp for r in peer.received if r.packet.payload_type == 0]
    steps = [b - a for a, b in itertools.pairwise(audio_ts)]
    assert all(step > 0 and step % 160 == 0 for step in steps)  # the clock ran on during events
    assert sum(steps) == 160 * (len(audio_ts) - 1 + len(events))


async def test_prompt_is_heard_and_interrupted_by_a_key(
    engine: MediaEngine, tmp_path: Path
) -> None:
    path = tmp_path / "prompt.wav"
    with wave.open(str(path), "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(44100)
        w.writeframes(
            array(
                "h",
                (
                    round(8000 * math.sin(2 * math.pi * 1000 * (i // 2) / 44100))
                    for i in range(2 * 44100 * 3)
                ),
            ).tobytes()
        )  # 3 s of 1 kHz, both channels
    peer = PacedPeer("caller", bytes(320))
    ep = await _leg(engine, peer)
    first = ep.play(path)
    second = ep.play(path)
    assert len(engine.prompts) == 1  # converted once, shared
    await asyncio.sleep(0.6)
    ep.inject_dtmf(DtmfDigit("1", "info", 0.0))
    assert await first == PlaybackOutcome.INTERRUPTED
    assert await second == PlaybackOutcome.INTERRUPTED
    tone = ep.play_tone(440, 200)
    assert await asyncio.wait_for(tone.wait(), 2) == PlaybackOutcome.COMPLETED
    await peer.stop()
    heard = peer.audio()
    assert level_db(heard, 1000) > -20  # the 44.1 kHz stereo prompt at 8 kHz, in tune
    assert level_db(heard, 440) > -30


async def test_hold_gives_music_and_silences_the_held_leg(engine: MediaEngine) -> None:
    conf = engine.create_conference("hold", hold_music=Prompt.tone(300, 1000))
    peers = {r: PacedPeer(r, tone_pcm(f)) for r, f in (("a", 500.0), ("b", 1100.0), ("c", 1900.0))}
    eps = {}
    for role, peer in peers.items():
        eps[role] = await _leg(engine, peer)
        conf.add(eps[role], role)
    conf.hold(eps["a"], True)
    conf.mute(eps["b"], True)
    await asyncio.sleep(1.0)
    for peer in peers.values():
        await peer.stop()
    a, b, c = (peers[r].audio(skip_s=0.3) for r in "abc")
    assert level_db(a, 300) > -20 and level_db(a, 1900) < -50  # music only
    assert level_db(b, 1900) > -20 and level_db(b, 500) < -50  # hears c, not held a
    assert level_db(c, 1100) < -50 and level_db(c, 500) < -50  # muted b, held a: silence


async def test_close_ends_everything_and_frees_the_port(engine: MediaEngine) -> None:
    peer = PacedPeer("caller", tone_pcm(700))
    ep = await _leg(engine, peer)
    handle = ep.play(Prompt.silence(5000))
    port = ep.local_port
    await ep.close()
    assert await handle == PlaybackOutcome.CLOSED
    with pytest.raises(EndpointClosed):
        await ep.digits.get()
    with pytest.raises(EndpointClosed):
        ep.play(Prompt.silence(20))
    await peer.stop()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", port))


async def test_reinvite_to_sendonly_stops_our_sending(engine: MediaEngine) -> None:
    peer = PacedPeer("caller", tone_pcm(700))
    ep = await _leg(engine, peer)
    await asyncio.sleep(0.2)
    assert ep.media is not None
    ep.configure(replace(ep.media, direction=Direction.RECVONLY))
    before = len(peer.received)
    await asyncio.sleep(0.3)
    assert len(peer.received) - before <= 1
    ep.configure(replace(ep.media, direction=Direction.SENDRECV))
    await asyncio.sleep(0.2)
    await peer.stop()
    assert len(peer.received) - before >= 5


async def test_rtcp_sender_reports_reach_the_peer(engine: MediaEngine) -> None:
    rtcp_sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    peer = PacedPeer("caller", tone_pcm(700))
    peer.bind()
    rtcp_sock.bind(("127.0.0.1", peer.address[1] + 1))
    rtcp_sock.settimeout(0)
    ep = await engine.open_endpoint("caller")
    ep.configure(peer.media_for(ep.local_port))
    peer.start(("127.0.0.1", ep.local_port))
    loop = asyncio.get_running_loop()
    try:
        data = await asyncio.wait_for(loop.sock_recv(rtcp_sock, 2048), 7.0)
        packets = parse_compound(data)
        sr = packets[0]
        assert isinstance(sr, SenderReport) and sr.packet_count > 0
        # we report back about their stream: our RR lands in the leg's stats
        rr = ReceiverReport(1, (replace(sr.reports[0], ssrc=sr.ssrc, fraction_lost=64),))
        rtcp_sock.sendto(bytes(rr), ("127.0.0.1", ep.local_port + 1))
        await asyncio.sleep(0.1)
    finally:
        rtcp_sock.close()
        await peer.stop()
    assert ep.stats.remote is not None and ep.stats.remote.fraction_lost == 0.25


@pytest.mark.parametrize("codec", [Codec.PCMA])
async def test_pcma_leg_alone_hears_its_prompt_in_pcma(engine: MediaEngine, codec: Codec) -> None:
    peer = PacedPeer("caller", tone_pcm(700), codec)
    ep = await _leg(engine, peer)
    await ep.play_tone(1200, 400)
    await peer.stop()
    assert {r.packet.payload_type for r in peer.received} == {8}
    assert level_db(peer.audio(), 1200) > -20


async def test_garbage_from_the_peer_is_counted_and_the_call_goes_on(engine: MediaEngine) -> None:
    import random

    peer = PacedPeer("caller", tone_pcm(700))
    ep = await _leg(engine, peer)
    assert peer.sock is not None
    rng = random.Random(4733)
    nasty = [
        b"",
        b"\x80",
        b"\x80\x00" + bytes(9),
        b"\x40" + bytes(20),  # short, wrong version
        bytes.fromhex("80c8000600000001") + bytes(20),  # RTCP on the RTP port
        bytes.fromhex("80650001000000000000000a01"),  # telephone-event, payload truncated
        bytes.fromhex("a0000001000000000000000a00"),  # padding length 0
        bytes.fromhex("8f000001000000000000000a"),  # 15 CSRCs announced, none present
    ]
    nasty += [
        bytes([0x80 | rng.randrange(64)]) + rng.randbytes(rng.randrange(40)) for _ in range(200)
    ]
    await asyncio.sleep(0.1)  # the peer's stream is established
    for data in nasty:
        peer.sock.sendto(data, ("127.0.0.1", ep.local_port))
    await asyncio.sleep(0.6)
    await peer.stop()
    stats = ep.stats
    assert stats.malformed >= 7
    assert stats.ssrc_changes == 0  # random SSRCs never pass probation
    assert stats.packets_received >= 20
    assert level_db(peer.audio(skip_s=0.1), 700) < -40  # still no echo, still talking
    assert len(peer.received) >= 20


@pytest.mark.parametrize("codec", [Codec.PCMU, Codec.PCMA])
async def test_plain_20_ms_packets_are_received_as_any_other_rtp(
    engine: MediaEngine, codec: Codec
) -> None:
    """The receive path's shortcut for plain 20 ms G.711 packets (no CSRC, the usual case)
    gives exactly what the general parser gives for the same stream carried with a CSRC:
    the frames heard, loss, jitter, late and duplicate packets, an SSRC change."""
    tone = tone_pcm(900)
    law = audioop.lin2ulaw if codec is Codec.PCMU else audioop.lin2alaw
    order = [*range(8), 9, 8, 8, 10, 14, 12, 13, 15, *range(16, 30)]  # reorder, dup, loss
    peer = ("127.0.0.1", 9)
    heard: dict[bool, tuple[list[bytes], LegStats]] = {}
    for with_csrc in (False, True):
        ep = await engine.open_endpoint(f"csrc-{with_csrc}")
        engine.ticker.discard(ep)  # pulled by hand below, one frame per packet
        ep.configure(
            NegotiatedMedia("127.0.0.1", ep.local_port, *peer, codec, DTMF_PT, Direction.SENDRECV)
        )
        frames = []
        for k, seq in enumerate(order):
            ssrc = 7 if seq < 20 else 8  # a new source (confirmed by its second packet)
            pkt = RtpPacket(
                codec.payload_type,
                (65530 + seq) % 65536,  # wraps
                (2**32 - 800 + seq * 160) % 2**32,  # wraps
                ssrc,
                law(tone[(seq % 40) * 320 : (seq % 40 + 1) * 320], 2),
                marker=seq == 0,
                csrc=(99,) if with_csrc else (),
            )
            ep._on_datagram(bytes(pkt), peer, 100.0 + k * 0.02 + (0.003 if k % 3 else 0.0))
            frames.append(ep.pull())
        heard[with_csrc] = (frames, replace(ep.stats, packets_sent=0))
        await ep.close()
    assert heard[False] == heard[True]
    frames, stats = heard[False]
    assert sum(f != bytes(320) for f in frames) >= 20
    assert stats.ssrc_changes == 1 and stats.jitter_ms > 0


async def test_sender_reports_follow_the_tick_index_also_across_skipped_ticks(
    engine: MediaEngine,
) -> None:
    """One SR every 250 ticks (5 s) at the leg's random phase, at the same ticks whatever the
    ticker skipped while the loop was blocked (RTP timestamps jump with the index)."""
    peer_rtp, peer_rtcp = (
        socket.socket(type=socket.SOCK_DGRAM),
        socket.socket(type=socket.SOCK_DGRAM),
    )
    peer_rtp.bind(("127.0.0.1", 0))
    peer_rtcp.bind(("127.0.0.1", peer_rtp.getsockname()[1] + 1))
    peer_rtcp.settimeout(0)
    ep = await engine.open_endpoint("reporting")
    engine.ticker.discard(ep)  # driven by hand: tick indexes with gaps
    ep.configure(
        NegotiatedMedia(
            "127.0.0.1", ep.local_port, "127.0.0.1", peer_rtp.getsockname()[1], Codec.PCMU, None
        )
    )
    indexes = [i for i in range(3000) if not 300 <= i < 910 and not 1500 <= i < 1501]
    try:
        for i in indexes:
            ep.push(bytes(320), i)
        await asyncio.sleep(0.1)
        reports = []
        with contextlib.suppress(BlockingIOError):
            while True:
                reports.append(parse_compound(peer_rtcp.recv(2048))[0])
    finally:
        peer_rtp.close()
        peer_rtcp.close()
        await ep.close()
    phase, base = ep._rtcp_phase, ep._tx.ts_base
    sent_at = [((r.rtp_timestamp - base) % 2**32) // 160 for r in reports]  # type: ignore[attr-defined]
    assert sent_at == [i for i in indexes if (i + phase) % 250 == 0]
    assert len(sent_at) >= 9


async def test_packets_sent_carry_the_tick_in_sequence_and_timestamp(engine: MediaEngine) -> None:
    """What the peer receives for each tick: the encoded frame, a sequence number one up
    (wrapping), the timestamp of the tick index (wrapping), one SSRC; also for a short frame."""
    peer = socket.socket(type=socket.SOCK_DGRAM)
    peer.bind(("127.0.0.1", 0))
    peer.settimeout(1.0)
    ep = await engine.open_endpoint("sender")
    engine.ticker.discard(ep)  # pushed by hand
    ep.configure(
        NegotiatedMedia(
            "127.0.0.1", ep.local_port, "127.0.0.1", peer.getsockname()[1], Codec.PCMA, None
        )
    )
    base = 2**32 - 160_333
    ep._tx.seq, ep._tx.ts_base = 65534, base  # both wrap within the first ticks
    tone = tone_pcm(700)
    frames = [tone[i * 320 : (i + 1) * 320] for i in range(6)] + [tone[:200]]
    try:
        for i, pcm in enumerate(frames):
            ep.push(pcm, 1000 + i)
        got = [RtpPacket.parse(peer.recv(2048)) for _ in frames]
    finally:
        peer.close()
        await ep.close()
    assert [p.sequence_number for p in got] == [65534, 65535, 0, 1, 2, 3, 4]
    assert [p.timestamp for p in got] == [(base + (1000 + i) * 160) % 2**32 for i in range(7)]
    assert [p.payload for p in got] == [audioop.lin2alaw(pcm, 2) for pcm in frames]
    assert {(p.payload_type, p.ssrc, p.marker) for p in got} == {(8, ep._tx.ssrc, False)}
    assert ep.stats.packets_sent == 7
