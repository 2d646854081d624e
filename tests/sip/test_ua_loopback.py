"""Two of our own user agents on loopback sockets: the call-control paths, end to end.

No fakes: real UDP/TCP sockets on 127.0.0.1, real transactions, short RFC timers where the test
needs a timeout to happen. The lab tests (Kamailio, baresip, SIPp, pyVoIP) prove interop.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator

import pytest

from telephony.sip.leg import (
    Answered,
    Dtmf,
    Ended,
    EndReason,
    LegEvent,
    LegState,
    MediaChanged,
    Ringing,
)
from telephony.sip.transaction import TimerConfig
from telephony.sip.ua import UAConfig, UserAgent
from telephony.types import Codec

from .ports import sip_port

FAST = TimerConfig(t1=0.05, t2=0.4, t4=0.5)


def pair_config(port_a: int, port_b: int, transport: str = "udp") -> tuple[UAConfig, UAConfig]:
    a = UAConfig(
        listen_host="127.0.0.1",
        listen_port=port_a,
        registrar=None,
        user="1000",
        password="x",
        transport=transport,
        trunk_peer=("127.0.0.1", port_b),
        timers=FAST,  # type: ignore[arg-type]
    )
    b = UAConfig(
        listen_host="127.0.0.1",
        listen_port=port_b,
        registrar=None,
        user="2001",
        password="x",
        transport=transport,
        trunk_peer=("127.0.0.1", port_a),
        timers=FAST,  # type: ignore[arg-type]
        inbound_answer_timeout=5.0,
    )
    return a, b


@pytest.fixture(params=["udp", "tcp"])
async def pair(request: pytest.FixtureRequest) -> AsyncIterator[tuple[UserAgent, UserAgent]]:
    ca, cb = pair_config(sip_port(), sip_port(), request.param)
    a, b = UserAgent(ca), UserAgent(cb)
    await a.start()
    await b.start()
    try:
        yield a, b
    finally:
        await a.stop()
        await b.stop()


async def next_event(
    leg_events: asyncio.Queue[LegEvent], kind: type, within: float = 5.0
) -> LegEvent:
    """The next event of type `kind` on a leg (earlier events of other kinds are skipped)."""
    async with asyncio.timeout(within):
        while True:
            ev = await leg_events.get()
            if isinstance(ev, kind):
                return ev


async def test_call_answered_media_and_bye_from_caller(pair: tuple[UserAgent, UserAgent]) -> None:
    a, b = pair
    leg = await a.dial("2001", local_media=("127.0.0.1", 40000), ring_timeout=5)
    assert leg.state is LegState.DIALING
    inbound = await asyncio.wait_for(b.incoming.get(), 5)
    assert inbound.remote_number == "1000" and inbound.direction == "inbound"
    await inbound.ring()
    await next_event(leg.events, Ringing)
    assert leg.state is LegState.RINGING
    await inbound.answer(("127.0.0.1", 40100))
    assert await leg.wait_answered(5)
    assert leg.media is not None and inbound.media is not None
    assert (leg.media.remote_host, leg.media.remote_port) == ("127.0.0.1", 40100)
    assert (inbound.media.remote_port, inbound.media.codec) == (40000, Codec.PCMU)
    assert leg.media.dtmf_payload_type == 101
    await leg.send_info_dtmf("5")
    ev = await next_event(inbound.events, Dtmf)
    assert isinstance(ev, Dtmf) and ev.digit.digit == "5" and ev.digit.source == "info"
    await leg.hangup()
    assert leg.end_reason is EndReason.NORMAL_LOCAL
    assert await inbound.wait_ended(5)
    assert inbound.end_reason is EndReason.NORMAL_REMOTE


async def test_bye_from_callee(pair: tuple[UserAgent, UserAgent]) -> None:
    a, b = pair
    leg = await a.dial("2001", local_media=("127.0.0.1", 40000), ring_timeout=5)
    inbound = await asyncio.wait_for(b.incoming.get(), 5)
    await inbound.answer(("127.0.0.1", 40100))
    assert await leg.wait_answered(5)
    await inbound.hangup()
    assert await leg.wait_ended(5)
    assert leg.end_reason is EndReason.NORMAL_REMOTE
    assert inbound.end_reason is EndReason.NORMAL_LOCAL


@pytest.mark.parametrize(
    "code, reason", [(486, EndReason.BUSY), (603, EndReason.DECLINED), (404, EndReason.NOT_FOUND)]
)
async def test_rejections_map_to_reasons(
    pair: tuple[UserAgent, UserAgent], code: int, reason: EndReason
) -> None:
    a, b = pair
    leg = await a.dial("2001", local_media=("127.0.0.1", 40000), ring_timeout=5)
    inbound = await asyncio.wait_for(b.incoming.get(), 5)
    await inbound.reject(code)
    assert await leg.wait_ended(5)
    assert (leg.end_reason, leg.sip_status) == (reason, code)
    ev = await next_event(leg.events, Ended)
    assert ev == Ended(reason, code)


async def test_caller_cancels_callee_sees_cancelled(pair: tuple[UserAgent, UserAgent]) -> None:
    a, b = pair
    leg = await a.dial("2001", local_media=("127.0.0.1", 40000), ring_timeout=5)
    inbound = await asyncio.wait_for(b.incoming.get(), 5)
    await inbound.ring()
    await next_event(leg.events, Ringing)
    await leg.hangup()
    assert leg.end_reason is EndReason.CANCELLED and leg.sip_status == 487
    assert await inbound.wait_ended(5)
    assert (inbound.end_reason, inbound.sip_status) == (EndReason.CANCELLED, 487)


async def test_ring_timeout_cancels_with_reason_timeout(pair: tuple[UserAgent, UserAgent]) -> None:
    a, b = pair
    leg = await a.dial("2001", local_media=("127.0.0.1", 40000), ring_timeout=0.5)
    inbound = await asyncio.wait_for(b.incoming.get(), 5)
    await inbound.ring()
    assert await leg.wait_ended(5)
    assert leg.end_reason is EndReason.TIMEOUT
    assert await inbound.wait_ended(5)
    assert inbound.end_reason is EndReason.CANCELLED


async def test_unreachable_peer() -> None:
    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # a port that never answers
    silent.bind(("127.0.0.1", 0))
    cfg = UAConfig(
        listen_host="127.0.0.1",
        listen_port=sip_port(),
        registrar=None,
        user="1000",
        password="x",
        trunk_peer=silent.getsockname(),
        timers=FAST,
    )
    ua = UserAgent(cfg)
    await ua.start()
    try:
        leg = await ua.dial("2001", local_media=("127.0.0.1", 40000), ring_timeout=30)
        assert await leg.wait_ended(10)  # timer B = 64*T1 = 3.2 s here
        assert leg.end_reason is EndReason.UNREACHABLE
        assert silent.recv(65535).startswith(b"INVITE ")
    finally:
        await ua.stop()
        silent.close()


@pytest.mark.parametrize(
    "target",
    ["20\r\n01", "2001 ", "a b", "2001@evil", "<sip:x@y>", "sip:x@y?Via=z", "", "1" * 65, "20#1"],
)
async def test_unsafe_targets_are_refused_before_sending(target: str) -> None:
    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    silent.bind(("127.0.0.1", 0))
    silent.setblocking(False)
    cfg = UAConfig(
        listen_host="127.0.0.1",
        listen_port=sip_port(),
        registrar=None,
        user="1000",
        password="x",
        trunk_peer=silent.getsockname(),
    )
    ua = UserAgent(cfg)
    await ua.start()
    try:
        with pytest.raises(ValueError):
            await ua.dial(target, local_media=("127.0.0.1", 40000), ring_timeout=5)
        with pytest.raises(ValueError):
            await ua.dial(
                "2001", local_media=("127.0.0.1", 40000), ring_timeout=5, caller_id="x\r\nVia: y"
            )
        await asyncio.sleep(0.05)
        with pytest.raises(BlockingIOError):
            silent.recv(65535)
        assert not ua.calls
    finally:
        await ua.stop()
        silent.close()


async def test_hold_and_resume_by_reinvite(pair: tuple[UserAgent, UserAgent]) -> None:
    a, b = pair
    leg = await a.dial("2001", local_media=("127.0.0.1", 40000), ring_timeout=5)
    inbound = await asyncio.wait_for(b.incoming.get(), 5)
    await inbound.answer(("127.0.0.1", 40100))
    assert await leg.wait_answered(5)
    assert await inbound.hold() == 200
    ev = await next_event(leg.events, MediaChanged)
    assert isinstance(ev, MediaChanged) and ev.held
    assert leg.media is not None and leg.media.direction.value == "recvonly"
    assert inbound.media is not None and inbound.media.direction.value == "sendonly"
    assert await inbound.resume() == 200
    ev = await next_event(leg.events, MediaChanged)
    assert isinstance(ev, MediaChanged) and not ev.held
    await leg.hangup()


async def test_stop_hangs_up_answered_calls(pair: tuple[UserAgent, UserAgent]) -> None:
    a, b = pair
    leg = await a.dial("2001", local_media=("127.0.0.1", 40000), ring_timeout=5)
    inbound = await asyncio.wait_for(b.incoming.get(), 5)
    await inbound.answer(("127.0.0.1", 40100))
    assert await leg.wait_answered(5)
    await a.stop()
    assert leg.end_reason is EndReason.NORMAL_LOCAL
    assert await inbound.wait_ended(5)
    assert inbound.end_reason is EndReason.NORMAL_REMOTE
    ev = await next_event(inbound.events, Answered)
    assert isinstance(ev, Answered)


async def test_late_ringing_after_we_gave_up_is_cancelled() -> None:
    from telephony.sip.builder import make_response
    from telephony.sip.message import SipRequest, parse_message

    peer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    peer.bind(("127.0.0.1", 0))
    peer.settimeout(3)
    cfg = UAConfig(
        listen_host="127.0.0.1",
        listen_port=sip_port(),
        registrar=None,
        user="1000",
        password="x",
        trunk_peer=peer.getsockname(),
        timers=FAST,
    )
    ua = UserAgent(cfg)
    await ua.start()
    try:
        leg = await ua.dial("2001", local_media=("127.0.0.1", 40000), ring_timeout=0.3)
        data, src = await asyncio.to_thread(peer.recvfrom, 65535)
        invite = parse_message(data)
        assert isinstance(invite, SipRequest)
        assert await leg.wait_ended(2)
        assert leg.end_reason is EndReason.UNREACHABLE  # nothing heard by the ring timeout
        peer.sendto(bytes(make_response(invite, 180, to_tag="late")), src)

        def next_cancel() -> bytes:
            while True:
                msg = peer.recv(65535)
                if msg.startswith(b"CANCEL "):
                    return msg

        cancel = await asyncio.to_thread(next_cancel)
        assert invite.top_via.branch is not None
        assert invite.top_via.branch.encode() in cancel  # RFC 3261 9.1: same branch as the INVITE
    finally:
        await ua.stop()
        peer.close()


async def test_peer_given_by_host_name() -> None:
    """A trunk peer named 'localhost': sends resolve without blocking, its IP is trusted."""
    pa, pb = sip_port(), sip_port()
    a = UserAgent(
        UAConfig("127.0.0.1", pa, None, "1000", "x", trunk_peer=("localhost", pb), timers=FAST)
    )
    b = UserAgent(
        UAConfig("127.0.0.1", pb, None, "2001", "x", trunk_peer=("localhost", pa), timers=FAST)
    )
    await a.start()
    await b.start()
    try:
        leg = await a.dial("2001", local_media=("127.0.0.1", 40000), ring_timeout=5)
        inbound = await asyncio.wait_for(b.incoming.get(), 5)
        await inbound.answer(("127.0.0.1", 40100))
        assert await leg.wait_answered(5)
        await leg.hangup()
        assert await inbound.wait_ended(5)
    finally:
        await a.stop()
        await b.stop()


async def test_early_media_and_event_iteration() -> None:
    """A 183 with SDP is reported as Ringing(early_media); `async for` ends with Ended."""
    from telephony.sip.builder import make_response
    from telephony.sip.message import SipRequest, parse_message
    from telephony.sip.sdp import SessionDescription, answer_offer

    peer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    peer.bind(("127.0.0.1", 0))
    peer.settimeout(3)
    ua = UserAgent(
        UAConfig(
            "127.0.0.1", sip_port(), None, "1000", "x", trunk_peer=peer.getsockname(), timers=FAST
        )
    )
    await ua.start()
    try:
        leg = await ua.dial("2001", local_media=("127.0.0.1", 40000), ring_timeout=5)
        data, src = await asyncio.to_thread(peer.recvfrom, 65535)
        invite = parse_message(data)
        assert isinstance(invite, SipRequest)
        answer, _ = answer_offer(SessionDescription.parse(invite.body), "127.0.0.1", 45000)
        progress = make_response(invite, 183, to_tag="p")
        progress.headers.add("Content-Type", "application/sdp")
        progress.body = bytes(answer)
        peer.sendto(bytes(progress), src)
        peer.sendto(bytes(make_response(invite, 486, to_tag="p")), src)
        seen: list[LegEvent] = []
        async with asyncio.timeout(5):
            async for ev in leg:
                seen.append(ev)
        assert isinstance(seen[0], Ringing) and seen[0].early_media is not None
        assert seen[0].early_media.remote_port == 45000
        assert seen[-1] == Ended(EndReason.BUSY, 486)
    finally:
        await ua.stop()
        peer.close()


async def test_wildcard_listen_address_advertises_the_route_source() -> None:
    ua = UserAgent(UAConfig("0.0.0.0", sip_port(), None, "1000", "x", trunk_peer=("127.0.0.1", 9)))
    await ua.start()
    try:
        assert ua.contact_uri.host == "127.0.0.1"
        assert " 127.0.0.1:" in ua.via()
    finally:
        await ua.stop()


async def test_delayed_offer_answer_comes_in_the_ack() -> None:
    """An INVITE without SDP: we offer in the 200, the caller answers in its ACK (RFC 3264 5)."""
    from telephony.sip.leg import Answered
    from telephony.sip.message import SipResponse, parse_message
    from telephony.sip.sdp import SessionDescription, answer_offer

    ua = UserAgent(
        UAConfig(
            "127.0.0.1",
            sip_port(),
            None,
            "1000",
            "x",
            timers=FAST,
            trusted_peers=frozenset({"127.0.0.1"}),
        )
    )
    await ua.start()
    peer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    peer.bind(("127.0.0.1", 0))
    peer.settimeout(3)
    here = f"127.0.0.1:{peer.getsockname()[1]}"
    common = (
        f"Via: SIP/2.0/UDP {here};branch=z9hG4bKdelayed{{n}};rport\r\n"
        f"From: <sip:2001@127.0.0.1>;tag=caller\r\nTo: <sip:1000@127.0.0.1>{{totag}}\r\n"
        f"Call-ID: delayed-offer\r\nCSeq: 1 {{method}}\r\nContact: <sip:2001@{here}>\r\n"
    )
    try:
        invite = common.format(n=1, totag="", method="INVITE") + "Content-Length: 0\r\n\r\n"
        peer.sendto(
            f"INVITE sip:1000@127.0.0.1 SIP/2.0\r\n{invite}".encode(),
            ("127.0.0.1", ua.config.listen_port),
        )
        leg = await asyncio.wait_for(ua.incoming.get(), 3)
        await leg.answer(("127.0.0.1", 40300))

        def final() -> SipResponse:
            while True:
                msg = parse_message(peer.recv(65535))
                if isinstance(msg, SipResponse) and msg.status >= 200:
                    return msg

        ok = await asyncio.to_thread(final)
        assert ok.status == 200 and ok.content_type == "application/sdp"
        answer, ours = answer_offer(SessionDescription.parse(ok.body), "127.0.0.1", 46000)
        assert ours.remote_port == 40300
        body = bytes(answer)
        ack = common.format(n=2, totag=f";tag={ok.to.tag}", method="ACK")
        ack += f"Content-Type: application/sdp\r\nContent-Length: {len(body)}\r\n\r\n"
        peer.sendto(
            f"ACK sip:1000@127.0.0.1 SIP/2.0\r\n{ack}".encode() + body,
            ("127.0.0.1", ua.config.listen_port),
        )
        assert isinstance(await next_event(leg.events, Answered), Answered)
        changed = await next_event(leg.events, MediaChanged)
        assert isinstance(changed, MediaChanged) and not changed.held
        assert leg.media is not None and leg.media.remote_port == 46000
    finally:
        await ua.stop()
        peer.close()


async def test_reinvite_keeps_the_session_id_and_bumps_the_version(
    pair: tuple[UserAgent, UserAgent],
) -> None:
    """RFC 3264 8: a new offer keeps o= session id, version + 1; taps show what went out."""
    from telephony.sip.message import SipRequest, parse_message
    from telephony.sip.sdp import SessionDescription

    a, b = pair
    sent: list[bytes] = []
    a.endpoint.taps.append(lambda d, data, addr: sent.append(data) if d == "out" else None)
    leg = await a.dial("2001", local_media=("127.0.0.1", 40000), ring_timeout=5)
    inbound = await asyncio.wait_for(b.incoming.get(), 5)
    await inbound.answer(("127.0.0.1", 40100))
    assert await leg.wait_answered(5)
    assert await leg.hold() == 200
    invites = [
        m for m in map(parse_message, sent) if isinstance(m, SipRequest) and m.method == "INVITE"
    ]
    first, second = (SessionDescription.parse(m.body) for m in invites)
    assert second.session_id == first.session_id
    assert second.session_version == first.session_version + 1
    await leg.hangup()
