"""The endpoint over a fake transport (the transport seam): dispatching never stalls on a slow
TCP connect for a response, and server transactions answer retransmissions by themselves."""

from __future__ import annotations

import asyncio
import time

from pytest_mock import MockerFixture

from telephony.sip.builder import make_response
from telephony.sip.message import SipRequest, SipResponse, parse_message
from telephony.sip.transaction import (
    ClientNonInviteTransaction,
    ServerInviteTransaction,
    ServerTransaction,
    TimerConfig,
)
from telephony.sip.transaction_layer import TransactionLayer

Address = tuple[str, int]


class SlowTcp:
    """A reliable transport whose every send needs a connection that takes `delay` to open."""

    reliable = True
    kind = "tcp"
    local_address = ("127.0.0.1", 5999)

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.sent: list[tuple[float, bytes, Address]] = []
        self.changed = asyncio.Event()

    async def wait_sent(self, count: int) -> None:
        while len(self.sent) < count:
            self.changed.clear()
            await self.changed.wait()

    def has_connection(self, addr: Address) -> bool:
        return False

    async def send(self, data: bytes, dest: Address) -> None:
        await asyncio.sleep(self.delay)
        self.sent.append((time.monotonic(), data, dest))
        self.changed.set()

    async def close(self) -> None:
        return None


def options(n: int) -> bytes:
    return (
        f"OPTIONS sip:a@127.0.0.1 SIP/2.0\r\n"
        f"Via: SIP/2.0/TCP 127.0.0.1:6{n:03d};branch=z9hG4bK{n}\r\n"
        f"From: <sip:b@127.0.0.1>;tag={n}\r\nTo: <sip:a@127.0.0.1>\r\nCall-ID: c{n}\r\n"
        f"CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
    ).encode()


async def test_responses_needing_a_connection_do_not_stall_dispatch() -> None:
    transport = SlowTcp(delay=1.0)
    handled: list[float] = []
    endpoint: TransactionLayer

    async def on_request(req: SipRequest, tx: ServerTransaction | None, source: Address) -> None:
        handled.append(time.monotonic())
        assert tx is not None
        await endpoint.respond(tx, make_response(req, 200, to_tag="t"))

    async def ignore(_: object) -> None:
        return None

    async def factory(_: object) -> SlowTcp:
        return transport

    endpoint = TransactionLayer(
        factory,  # type: ignore[arg-type]
        timers=TimerConfig(),
        clock=time.monotonic,
        on_request=on_request,
        on_stray_response=ignore,
        on_2xx_unacked=ignore,
    )
    await endpoint.start()
    try:
        started = time.monotonic()
        for n in range(5):
            endpoint._enqueue(options(n), ("127.0.0.1", 40000 + n))
        async with asyncio.timeout(3):
            await transport.wait_sent(5)
        assert max(handled) - started < 0.5  # all five handled without waiting for connects
        assert max(t for t, _, _ in transport.sent) - started < 1.8  # connects ran in parallel
        replies = [parse_message(data) for _, data, _ in transport.sent]
        assert all(isinstance(r, SipResponse) and r.status == 200 for r in replies)
    finally:
        await endpoint.stop()


async def test_retransmitted_invite_is_answered_by_the_transaction() -> None:
    transport = SlowTcp(delay=0.0)
    transport.has_connection = lambda addr: True  # type: ignore[method-assign]
    seen: list[ServerTransaction] = []

    async def on_request(req: SipRequest, tx: ServerTransaction | None, source: Address) -> None:
        assert isinstance(tx, ServerInviteTransaction)
        seen.append(tx)

    async def ignore(_: object) -> None:
        return None

    async def factory(_: object) -> SlowTcp:
        return transport

    endpoint = TransactionLayer(
        factory,  # type: ignore[arg-type]
        timers=TimerConfig(),
        clock=time.monotonic,
        on_request=on_request,
        on_stray_response=ignore,
        on_2xx_unacked=ignore,
    )
    await endpoint.start()
    invite = options(1).replace(b"OPTIONS", b"INVITE")
    try:
        endpoint._enqueue(invite, ("127.0.0.1", 40001))
        endpoint._enqueue(invite, ("127.0.0.1", 40001))
        async with asyncio.timeout(2):
            await transport.wait_sent(2)
        assert len(seen) == 1  # the TU saw the INVITE once
        statuses = [parse_message(d).status for _, d, _ in transport.sent]  # type: ignore[union-attr]
        assert statuses == [100, 100]  # the retransmission got the last provisional again
    finally:
        await endpoint.stop()


async def test_timer_work_does_not_grow_with_the_number_of_transactions(
    mocker: MockerFixture,
) -> None:
    """Issue 13 finding 1: the timer task scanned every transaction's deadline on each wake-up,
    so with thousands of live transactions every new message cost a scan of all of them.
    Timers are a heap now: the deadlines looked at per message do not depend on how many
    transactions are waiting."""
    transport = SlowTcp(delay=0.0)
    transport.reliable = False  # type: ignore[misc]  # UDP-like: timers E/F run

    async def ignore(*_: object) -> None:
        return None

    async def factory(_: object) -> SlowTcp:
        return transport

    endpoint = TransactionLayer(
        factory,  # type: ignore[arg-type]
        timers=TimerConfig(),
        clock=time.monotonic,
        on_request=ignore,
        on_stray_response=ignore,
        on_2xx_unacked=ignore,
    )
    await endpoint.start()

    async def start_some(count: int, first: int) -> None:
        for n in range(first, first + count):
            req = parse_message(options(n % 1000).replace(b"z9hG4bK", f"z9hG4bK{n}x".encode()))
            assert isinstance(req, SipRequest)
            await endpoint.request(req, ("127.0.0.1", 9))
            await asyncio.sleep(0)  # let the timer task look at its deadlines

    try:
        await start_some(4000, 0)  # nobody answers: they wait for Timer F (32 s)
        spy = mocker.spy(ClientNonInviteTransaction, "next_deadline")
        await start_some(100, 10_000)
        assert len(transport.sent) >= 4100
        assert spy.call_count < 10 * 100, spy.call_count  # a scan would be 4,000 per message
    finally:
        await endpoint.stop()
