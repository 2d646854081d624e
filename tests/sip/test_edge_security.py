"""The SIP edge as an attacker on the network sees it (issue 13 findings 1, 2, 4, 6 and 12/TCP).

Real UAs on loopback sockets; the attacker is a plain socket, bound to 127.0.0.2 where it must
be a stranger. Each test asserts what the attacker (or the dispatcher's call) observes.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator

import pytest

from telephony.sip.leg import EndReason, Leg, LegState, MediaChanged
from telephony.sip.message import SipResponse, parse_message
from telephony.sip.transaction import TimerConfig
from telephony.sip.ua import UAConfig, UserAgent

from .ports import sip_port

FAST = TimerConfig(t1=0.05, t2=0.4, t4=0.5)
STRANGER = "127.0.0.2"
SDP = (
    "v=0\r\no=x 1 1 IN IP4 {host}\r\ns=-\r\nc=IN IP4 {host}\r\nt=0 0\r\n"
    "m=audio {port} RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\n"
)


def request(
    method: str,
    port: int,
    here: tuple[str, int],
    *,
    n: int = 1,
    via_extra: str = ";rport",
    call_id: str = "edge",
    tags: tuple[str, str | None] = ("attacker", None),
    cseq: int = 1,
    sdp: str = "",
) -> bytes:
    to_tag = f";tag={tags[1]}" if tags[1] else ""
    head = (
        f"{method} sip:1000@127.0.0.1:{port} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP {here[0]}:{here[1]};branch=z9hG4bKedge{n}{via_extra}\r\n"
        f"From: <sip:666@{here[0]}>;tag={tags[0]}\r\nTo: <sip:1000@127.0.0.1>{to_tag}\r\n"
        f"Call-ID: {call_id}\r\nCSeq: {cseq} {method}\r\nContact: <sip:666@{here[0]}:{here[1]}>\r\n"
        f"Max-Forwards: 70\r\n"
    )
    if sdp:
        head += "Content-Type: application/sdp\r\n"
    return f"{head}Content-Length: {len(sdp)}\r\n\r\n{sdp}".encode()


def udp(host: str) -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((host, 0))
    s.settimeout(0.2)
    return s


def send_paced(s: socket.socket, datagrams: list[bytes], port: int, pause: float) -> None:
    """Send in bursts of 10 (the kernel's loopback buffer holds fewer than 200 datagrams)."""
    for i, data in enumerate(datagrams):
        s.sendto(data, ("127.0.0.1", port))
        if i % 10 == 9:
            time.sleep(pause)


def collect(s: socket.socket, seconds: float) -> list[SipResponse]:
    """Every response arriving on `s` within `seconds`."""
    out: list[SipResponse] = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        try:
            data = s.recv(65535)
        except TimeoutError:
            continue
        msg = parse_message(data)
        assert isinstance(msg, SipResponse)
        out.append(msg)
    return out


@pytest.fixture
async def trunk_ua() -> AsyncIterator[UserAgent]:
    """A UA whose trunk peer (its only trusted source) is 127.0.0.1."""
    ua = UserAgent(
        UAConfig(
            "127.0.0.1", sip_port(), None, "1000", "x", trunk_peer=("127.0.0.1", 9), timers=FAST
        )
    )
    await ua.start()
    yield ua
    await ua.stop()


# -- finding 1: refused statelessly, before any transaction, rate-limited ---------------------


async def test_untrusted_invite_gets_one_403_and_leaves_no_transaction(trunk_ua: UserAgent) -> None:
    port = trunk_ua.config.listen_port
    with udp(STRANGER) as s:
        s.sendto(
            request("INVITE", port, s.getsockname(), sdp=SDP.format(host=STRANGER, port=40000)),
            ("127.0.0.1", port),
        )
        # T1 = 50 ms: a stateful 403 would be retransmitted (Timer G) several times in 1.5 s
        got = await asyncio.to_thread(collect, s, 1.5)
    assert [r.status for r in got] == [403]  # no 100 Trying, no retransmission
    assert trunk_ua.endpoint.live_transactions == 0
    assert trunk_ua.refusals.get("untrusted") == 1
    assert trunk_ua.incoming.empty()


async def test_a_flooding_source_is_rate_limited_and_counted(trunk_ua: UserAgent) -> None:
    port = trunk_ua.config.listen_port
    with udp(STRANGER) as s:
        here = s.getsockname()
        flood = [request("INVITE", port, here, n=n, call_id=f"flood{n}") for n in range(300)]
        got, _ = await asyncio.gather(
            asyncio.to_thread(collect, s, 1.5), asyncio.to_thread(send_paced, s, flood, port, 0.001)
        )
    burst = trunk_ua.config.source_burst
    assert burst <= len(got) <= burst + 2 * trunk_ua.config.source_rate
    counts = trunk_ua.refusals
    assert counts["untrusted"] == len(got)
    assert counts["rate_limited"] + counts["untrusted"] == 300
    assert trunk_ua.endpoint.live_transactions == 0


async def test_trusted_requests_are_not_rate_limited(trunk_ua: UserAgent) -> None:
    port = trunk_ua.config.listen_port
    with udp("127.0.0.1") as s:
        here = s.getsockname()
        options = [request("OPTIONS", port, here, n=n, call_id=f"opt{n}") for n in range(300)]
        got, _ = await asyncio.gather(
            asyncio.to_thread(collect, s, 2.5),
            asyncio.to_thread(send_paced, s, options, port, 0.01),
        )
    assert len(got) == 300 and {r.status for r in got} == {200}
    assert "rate_limited" not in trunk_ua.refusals


# -- finding 2: responses go where the packet came from --------------------------------------


async def test_a_received_parameter_written_by_the_sender_is_not_honoured(
    trunk_ua: UserAgent,
) -> None:
    port = trunk_ua.config.listen_port
    with udp("127.0.0.1") as real, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as third:
        here = real.getsockname()
        third.bind(("127.0.0.3", here[1]))  # where `received=127.0.0.3` would send it
        third.settimeout(0.2)
        real.sendto(
            request("OPTIONS", port, here, via_extra=";received=127.0.0.3"), ("127.0.0.1", port)
        )
        to_source = await asyncio.to_thread(collect, real, 0.8)
        to_third = await asyncio.to_thread(collect, third, 0.3)
    assert [r.status for r in to_source] == [200]
    assert to_third == []
    assert to_source[0].top_via.param("received") == "127.0.0.1"


# -- finding 6: trust fails closed ------------------------------------------------------------


@pytest.mark.parametrize("peers, admitted", [(frozenset(), False), (frozenset({"*"}), True)])
async def test_without_peers_inbound_calls_are_refused_unless_star(
    peers: frozenset[str], admitted: bool
) -> None:
    ua = UserAgent(
        UAConfig("127.0.0.1", sip_port(), None, "1000", "x", trusted_peers=peers, timers=FAST)
    )
    await ua.start()
    try:
        port = ua.config.listen_port
        with udp("127.0.0.1") as s:
            sdp = SDP.format(host="127.0.0.1", port=40000)
            s.sendto(request("INVITE", port, s.getsockname(), sdp=sdp), ("127.0.0.1", port))
            got = await asyncio.to_thread(collect, s, 0.5)
        if admitted:
            assert [r.status for r in got] == [100]
            leg = await asyncio.wait_for(ua.incoming.get(), 2)
            assert leg.direction == "inbound"
        else:
            assert [r.status for r in got] == [403] and ua.incoming.empty()
    finally:
        await ua.stop()


# -- finding 4: in-dialog requests only from the dialog's peer; SDP address policy -------------


@pytest.fixture
async def call() -> AsyncIterator[tuple[UserAgent, Leg, Leg]]:
    """An answered call from a (1000) to b (2001), each the other's trunk peer."""
    pa, pb = sip_port(), sip_port()
    a = UserAgent(
        UAConfig("127.0.0.1", pa, None, "1000", "x", trunk_peer=("127.0.0.1", pb), timers=FAST)
    )
    b = UserAgent(
        UAConfig("127.0.0.1", pb, None, "2001", "x", trunk_peer=("127.0.0.1", pa), timers=FAST)
    )
    await a.start()
    await b.start()
    try:
        leg = await a.dial("2001", local_media=("127.0.0.1", 40000), ring_timeout=5)
        inbound = await asyncio.wait_for(b.incoming.get(), 5)
        await inbound.answer(("127.0.0.1", 40100))
        assert await leg.wait_answered(5)
        yield a, leg, inbound
    finally:
        await a.stop()
        await b.stop()


def reinvite(
    a: UserAgent, leg: Leg, here: tuple[str, int], media_host: str, media_port: int
) -> bytes:
    dialog = leg.dialog
    assert dialog is not None
    return request(
        "INVITE",
        a.config.listen_port,
        here,
        n=77,
        call_id=leg.call_id,
        tags=(dialog.remote_tag, dialog.local_tag),
        cseq=(dialog.remote_seq or 1) + 10,
        sdp=SDP.format(host=media_host, port=media_port),
    )


def media_changes(leg: Leg) -> list[MediaChanged]:
    out = []
    while not leg.events.empty():
        ev = leg.events.get_nowait()
        if isinstance(ev, MediaChanged):
            out.append(ev)
    return out


async def test_a_stranger_cannot_move_a_calls_media(call: tuple[UserAgent, Leg, Leg]) -> None:
    a, leg, _ = call
    with udp(STRANGER) as s:
        s.sendto(
            reinvite(a, leg, s.getsockname(), "203.0.113.50", 4000),
            ("127.0.0.1", a.config.listen_port),
        )
        got = await asyncio.to_thread(collect, s, 0.8)
    assert [r.status for r in got] == [403]
    assert media_changes(leg) == []
    assert leg.media is not None and leg.media.remote_port == 40100
    assert leg.state is LegState.ANSWERED and a.refusals.get("not_dialog_peer") == 1


@pytest.mark.parametrize(
    "host, port", [("224.0.0.1", 40000), ("0.0.0.0", 40000), ("127.0.0.1", 5060), ("127.0.0.1", 80)]
)
async def test_the_peer_cannot_point_media_outside_the_policy(
    call: tuple[UserAgent, Leg, Leg], host: str, port: int
) -> None:
    a, leg, _ = call
    with udp("127.0.0.1") as s:
        s.sendto(reinvite(a, leg, s.getsockname(), host, port), ("127.0.0.1", a.config.listen_port))
        got = await asyncio.to_thread(collect, s, 0.5)
    finals = {r.status for r in got if r.status >= 200}  # retransmitted until ACKed: a set
    if port == 5060:  # a legal port: the policy is about ports below 1024
        assert finals == {200}
    else:
        assert finals == {488}
        assert media_changes(leg) == []
        assert leg.media is not None and leg.media.remote_port == 40100


async def test_inbound_invite_with_multicast_media_is_refused(trunk_ua: UserAgent) -> None:
    port = trunk_ua.config.listen_port
    with udp("127.0.0.1") as s:
        sdp = SDP.format(host="239.1.1.1", port=40000)
        s.sendto(request("INVITE", port, s.getsockname(), sdp=sdp), ("127.0.0.1", port))
        got = await asyncio.to_thread(collect, s, 0.5)
    assert {r.status for r in got if r.status >= 200} == {488}
    assert trunk_ua.incoming.empty()


# -- trunk trust not by address alone: digest challenge for inbound INVITEs -------------------


@pytest.mark.parametrize("password, answered", [("trunk-secret", True), ("wrong", False)])
async def test_inbound_invites_from_the_trunk_must_answer_a_digest_challenge(
    password: str, answered: bool
) -> None:
    pa, pb = sip_port(), sip_port()
    trunk = UserAgent(
        UAConfig(
            "127.0.0.1", pa, None, "trunk", password, trunk_peer=("127.0.0.1", pb), timers=FAST
        )
    )
    ours = UserAgent(
        UAConfig(
            "127.0.0.1",
            pb,
            None,
            "1000",
            "x",
            trunk_peer=("127.0.0.1", pa),
            trunk_auth=("trunk", "trunk-secret"),
            timers=FAST,
        )
    )
    await trunk.start()
    await ours.start()
    try:
        leg = await trunk.dial("1000", local_media=("127.0.0.1", 40000), ring_timeout=3)
        if answered:
            inbound = await asyncio.wait_for(ours.incoming.get(), 3)
            await inbound.answer(("127.0.0.1", 40100))
            assert await leg.wait_answered(3)
        else:
            assert await leg.wait_ended(3)
            assert leg.end_reason is EndReason.AUTH_FAILED
            assert ours.incoming.empty()
        assert ours.refusals.get("trunk_auth", 0) >= 1
    finally:
        await trunk.stop()
        await ours.stop()


# -- finding 12 (TCP): a connection cap per source and an idle timeout ------------------------


async def test_tcp_connections_are_capped_per_source_and_closed_when_idle() -> None:
    ua = UserAgent(
        UAConfig(
            "127.0.0.1",
            sip_port(),
            None,
            "1000",
            "x",
            transport="tcp",
            trunk_peer=("127.0.0.1", 9),
            tcp_max_per_source=4,
            tcp_idle_timeout=1.0,
        )
    )
    await ua.start()
    try:
        conns = [
            await asyncio.open_connection("127.0.0.1", ua.config.listen_port) for _ in range(10)
        ]

        async def closed_within(reader: asyncio.StreamReader, seconds: float) -> bool:
            try:
                return await asyncio.wait_for(reader.read(1), seconds) == b""
            except TimeoutError:
                return False

        closed = await asyncio.gather(*(closed_within(r, 0.3) for r, _ in conns))
        assert sum(closed) == 6  # 4 kept open
        started = time.monotonic()
        for (reader, _), was_closed in zip(conns, closed, strict=True):
            if not was_closed:
                assert await asyncio.wait_for(reader.read(1), 3.0) == b""
        assert time.monotonic() - started < 2.5  # closed by the 1 s idle timeout
        for _, writer in conns:
            writer.close()
    finally:
        await ua.stop()


async def test_a_tcp_connection_in_use_is_not_idle() -> None:
    ua = UserAgent(
        UAConfig(
            "127.0.0.1",
            sip_port(),
            None,
            "1000",
            "x",
            transport="tcp",
            trunk_peer=("127.0.0.1", 9),
            tcp_idle_timeout=0.6,
        )
    )
    await ua.start()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", ua.config.listen_port)
        here = writer.get_extra_info("sockname")
        for n in range(4):  # one OPTIONS every 0.3 s for 1.2 s: twice the idle timeout
            writer.write(
                request("OPTIONS", ua.config.listen_port, here, n=n).replace(b"UDP", b"TCP")
            )
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 2.0)
            assert head.startswith(b"SIP/2.0 200")
            await asyncio.sleep(0.3)
        writer.close()
    finally:
        await ua.stop()
