"""RTP at the edge (issue 13 finding 11): ports a stranger cannot predict, a latch a stranger
cannot take."""

from __future__ import annotations

import asyncio
import itertools
import socket

from telephony.media import MediaEngine
from telephony.media.rtp import pack_header
from tests.media.rtp_peer import PacedPeer, tone_pcm


async def test_rtp_ports_are_not_handed_out_in_sequence(engine: MediaEngine) -> None:
    endpoints = [await engine.open_endpoint(f"leg{i}") for i in range(8)]
    ports = [ep.local_port for ep in endpoints]
    try:
        assert all(p % 2 == 0 for p in ports) and len(set(ports)) == 8
        steps = {b - a for a, b in itertools.pairwise(ports)}
        assert steps != {2}  # the next call's port does not follow from the last one's
    finally:
        for ep in endpoints:
            await ep.close()


async def test_a_stranger_on_the_peers_host_cannot_take_the_latch(engine: MediaEngine) -> None:
    peer = PacedPeer("caller", tone_pcm(700))
    peer.bind()
    ep = await engine.open_endpoint("caller")
    ep.configure(peer.media_for(ep.local_port))  # SDP names the peer's real port
    stranger = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    stranger.bind(("127.0.0.1", 0))  # same host as the peer, another port
    stranger.settimeout(0.05)
    try:
        # a first packet that is not the peer's RTP (payload type never agreed) arrives first
        stranger.sendto(
            pack_header(99, 1, 1, 5, False) + b"\xff" * 160, ("127.0.0.1", ep.local_port)
        )
        await asyncio.sleep(0.05)
        peer.start(("127.0.0.1", ep.local_port))
        await asyncio.sleep(0.5)
        stolen = 0
        while True:
            try:
                stranger.recv(2048)
            except TimeoutError:
                break
            stolen += 1
    finally:
        stranger.close()
        await peer.stop()
    assert ep.stats.rejected_source == 1
    assert ep.stats.packets_received >= 15  # the caller is heard ...
    assert len(peer.received) >= 10 and stolen == 0  # ... and hears us; the stranger gets nothing
