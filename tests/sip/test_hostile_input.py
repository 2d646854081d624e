"""Garbage, truncated, oversized and header-less messages on the wire never hurt the UA.

A running UA is sent hostile datagrams (and a hostile TCP stream); it answers 400 (or 513/416)
where a response can be addressed, drops the rest, and still handles a normal call afterwards.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator

import pytest

from telephony.sip.leg import EndReason
from telephony.sip.transaction import TimerConfig
from telephony.sip.ua import UAConfig, UserAgent

from .ports import sip_port

FAST = TimerConfig(t1=0.05, t2=0.4, t4=0.5)
GOOD_HEADERS = (
    b"Via: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bKhostile;rport\r\n"
    b"From: <sip:666@127.0.0.1>;tag=x\r\nTo: <sip:1000@127.0.0.1>\r\nCall-ID: hostile\r\n"
)


@pytest.fixture
async def ua() -> AsyncIterator[UserAgent]:
    agent = UserAgent(
        UAConfig(
            listen_host="127.0.0.1",
            listen_port=sip_port(),
            registrar=None,
            user="1000",
            password="x",
            timers=FAST,
            trusted_peers=frozenset({"127.0.0.1"}),  # trust fails closed without peers
        )
    )
    await agent.start()
    yield agent
    await agent.stop()


def exchange(port: int, data: bytes, wait: float = 0.5) -> bytes | None:
    """Send one datagram; return the first final (non-1xx) reply, or None after `wait`."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(wait)
        s.sendto(data, ("127.0.0.1", port))
        while True:
            try:
                reply = s.recv(65535)
            except TimeoutError:
                return None
            if not reply.startswith(b"SIP/2.0 1"):
                return reply


@pytest.mark.parametrize(
    "data, expected",
    [
        # no CSeq: a reply could not be matched by the sender; dropped
        (b"INVITE sip:1000@127.0.0.1 SIP/2.0\r\n" + GOOD_HEADERS + b"\r\n", None),
        # an INVITE without Contact
        (
            b"INVITE sip:1000@127.0.0.1 SIP/2.0\r\n" + GOOD_HEADERS + b"CSeq: 1 INVITE\r\n"
            b"Content-Type: application/sdp\r\nContent-Length: 5\r\n\r\nv=0\r\n",
            b"SIP/2.0 400 ",
        ),
        (
            b"INVITE sip:1000@127.0.0.1 SIP/2.0\r\n" + GOOD_HEADERS + b"CSeq: x INVITE\r\n\r\n",
            b"SIP/2.0 400 ",
        ),
        (b"INVITE tel:+1 SIP/2.0\r\n" + GOOD_HEADERS + b"CSeq: 1 INVITE\r\n\r\n", b"SIP/2.0 416 "),
        (
            b"OPTIONS sip:1000@127.0.0.1 SIP/2.0\r\n"
            + GOOD_HEADERS
            + b"CSeq: 1 OPTIONS\r\n"
            + b"X-Pad: "
            + b"a" * 20000
            + b"\r\n\r\n",
            b"SIP/2.0 513 ",
        ),
        (
            b"INVITE sip:1000@127.0.0.1 SIP/2.0\r\n"
            + GOOD_HEADERS
            + b"CSeq: 1 INVITE\r\nContent-Type: application/sdp\r\n"
            + b"Content-Length: 12\r\n\r\nv=0\r\nbogus",
            b"SIP/2.0 400 ",
        ),
        (b"\x00\xff" * 100, None),
        (b"SIP/2.0 200 OK\r\n\r\n", None),
        (b"INVITE sip:1000@127.0.0.1 SIP/2.0\r\nVia: junk\r\n\r\n", None),
        (b"ACK sip:1000@127.0.0.1 SIP/2.0\r\n" + GOOD_HEADERS + b"\r\n", None),
    ],
)
async def test_hostile_datagram(ua: UserAgent, data: bytes, expected: bytes | None) -> None:
    reply = await asyncio.to_thread(exchange, ua.config.listen_port, data)
    if expected is None:
        assert reply is None
    else:
        assert reply is not None and reply.startswith(expected), reply
        assert b"Call-ID: hostile" in reply
    # still alive: answers OPTIONS
    options = (
        b"OPTIONS sip:1000@127.0.0.1 SIP/2.0\r\n"
        + GOOD_HEADERS.replace(b"hostile", b"ok")
        + b"CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
    )
    ok = await asyncio.to_thread(exchange, ua.config.listen_port, options, 2.0)
    assert ok is not None and ok.startswith(b"SIP/2.0 200 ")


async def test_flood_of_garbage_then_a_call_still_works() -> None:
    port_a, port_b = sip_port(), sip_port()
    caller = UserAgent(
        UAConfig(
            listen_host="127.0.0.1",
            listen_port=port_a,
            registrar=None,
            user="1000",
            password="x",
            trunk_peer=("127.0.0.1", port_b),
            timers=FAST,
        )
    )
    callee = UserAgent(
        UAConfig(
            listen_host="127.0.0.1",
            listen_port=port_b,
            registrar=None,
            user="2001",
            password="x",
            trunk_peer=("127.0.0.1", port_a),
            timers=FAST,
        )
    )
    await caller.start()
    await callee.start()
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            for i in range(2000):
                s.sendto(b"INVITE garbage %d\r\n\r\n" % i, ("127.0.0.1", port_b))
        leg = await caller.dial("2001", local_media=("127.0.0.1", 40000), ring_timeout=5)
        inbound = await asyncio.wait_for(callee.incoming.get(), 5)
        await inbound.answer(("127.0.0.1", 40100))
        assert await leg.wait_answered(5)
        await leg.hangup()
        assert leg.end_reason is EndReason.NORMAL_LOCAL
    finally:
        await caller.stop()
        await callee.stop()


async def test_tcp_stream_without_content_length_is_closed_not_fatal() -> None:
    agent = UserAgent(
        UAConfig(
            listen_host="127.0.0.1",
            listen_port=sip_port(),
            registrar=None,
            user="1000",
            password="x",
            transport="tcp",
            timers=FAST,
        )
    )
    await agent.start()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", agent.config.listen_port)
        writer.write(
            b"OPTIONS sip:1000@127.0.0.1 SIP/2.0\r\n" + GOOD_HEADERS + b"CSeq: 1 OPTIONS\r\n\r\n"
        )
        await writer.drain()
        assert await asyncio.wait_for(reader.read(), 5) == b""  # the connection was closed
        writer.close()
        reader, writer = await asyncio.open_connection("127.0.0.1", agent.config.listen_port)
        writer.write(
            b"OPTIONS sip:1000@127.0.0.1 SIP/2.0\r\n"
            + GOOD_HEADERS
            + b"CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
        )
        await writer.drain()
        reply = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        assert reply.startswith(b"SIP/2.0 200 ")
        writer.close()
    finally:
        await agent.stop()


async def test_untrusted_source_is_refused_with_403() -> None:
    callee = UserAgent(
        UAConfig(
            listen_host="127.0.0.1",
            listen_port=sip_port(),
            registrar=None,
            user="2001",
            password="x",
            trunk_peer=("127.0.0.1", 9),
            timers=FAST,
        )
    )
    await callee.start()
    stranger = UserAgent(
        UAConfig(
            listen_host="127.0.0.2",
            listen_port=sip_port(),
            registrar=None,
            user="666",
            password="x",
            trunk_peer=("127.0.0.1", callee.config.listen_port),
            timers=FAST,
        )
    )
    await stranger.start()
    try:
        leg = await stranger.dial("2001", local_media=("127.0.0.2", 40000), ring_timeout=5)
        assert await leg.wait_ended(5)
        assert (leg.end_reason, leg.sip_status) == (EndReason.AUTH_FAILED, 403)
        assert callee.incoming.empty()
    finally:
        await stranger.stop()
        await callee.stop()
