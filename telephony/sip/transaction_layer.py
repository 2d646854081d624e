"""The transaction layer (RFC 3261 17) at work: one transport, the live transactions, their timers.

`TransactionLayer` owns the receive queue (one dispatcher task handles messages in arrival order),
the table of client and server transactions and one timer task that sleeps until the nearest
transaction deadline (time comes from the injected clock). It executes the transactions'
commands and passes to its user (the UA) what the transactions do not absorb:

* `on_request(request, server_tx | None, source)`: new requests; an ACK comes with None
* `on_stray_response(response)`: responses no transaction matches (2xx retransmissions)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from .builder import make_response
from .errors import TransportError
from .message import SipRequest, SipResponse
from .screening import Rejected, screen
from .transaction import (
    ClientInviteTransaction,
    ClientNonInviteTransaction,
    ClientTransaction,
    Command,
    Deliver,
    Send,
    ServerInviteTransaction,
    ServerNonInviteTransaction,
    ServerTransaction,
    Terminated,
    TimedOut,
    TimerConfig,
    TransactionKey,
    client_key,
    server_key,
)
from .transport import Address, Transport, response_destination, stamp_via

logger = logging.getLogger(__name__)

Clock = Callable[[], float]
OnRequest = Callable[[SipRequest, "ServerTransaction | None", Address], Awaitable[None]]
OnResponse = Callable[[SipResponse], Awaitable[None]]
OnUnacked = Callable[[ServerInviteTransaction], Awaitable[None]]
MAX_QUEUE = 4096


@dataclass(frozen=True, slots=True)
class TransactionFailed:
    """What a client transaction reports instead of a final response: `timer` B/F or 'transport'."""

    reason: str


ClientEvent = SipResponse | TransactionFailed


class ClientHandle:
    """The user's view of one client transaction: a queue of responses or a failure."""

    def __init__(self, tx: ClientTransaction) -> None:
        self.tx = tx
        self.events: asyncio.Queue[ClientEvent] = asyncio.Queue()

    async def final(self, timeout: float) -> ClientEvent:
        """Wait for the final response (or failure), skipping provisional ones."""
        async with asyncio.timeout(timeout):
            while True:
                ev = await self.events.get()
                if isinstance(ev, TransactionFailed) or ev.status >= 200:
                    return ev


class TransactionLayer:
    """Transport + transactions + timers; see the module docstring."""

    def __init__(
        self,
        transport_factory: Callable[[Callable[[bytes, Address], None]], Awaitable[Transport]],
        *,
        timers: TimerConfig,
        clock: Clock,
        on_request: OnRequest,
        on_stray_response: OnResponse,
        on_2xx_unacked: OnUnacked,
    ) -> None:
        self._factory = transport_factory
        self.timers = timers
        self.clock = clock
        self._on_request = on_request
        self._on_stray_response = on_stray_response
        self._on_2xx_unacked = on_2xx_unacked
        self.transport: Transport | None = None
        self._inbox: asyncio.Queue[tuple[bytes, Address]] = asyncio.Queue(MAX_QUEUE)
        self._clients: dict[TransactionKey, ClientHandle] = {}
        self._servers: dict[TransactionKey, ServerTransaction] = {}
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._background: set[asyncio.Task[None]] = set()
        self.dropped = 0
        # observers of the wire (tracing, capture): called with ("in"|"out", bytes, peer address)
        self.taps: list[Callable[[str, bytes, Address], None]] = []

    # -- lifecycle ---------------------------------------------------------------------------
    async def start(self) -> None:
        self.transport = await self._factory(self._enqueue)
        self._tasks = [
            asyncio.create_task(self._dispatch_loop(), name="sip-dispatch"),
            asyncio.create_task(self._timer_loop(), name="sip-timers"),
        ]

    async def stop(self) -> None:
        for task in [*self._tasks, *self._background]:
            task.cancel()
        for task in [*self._tasks, *self._background]:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        if self.transport is not None:
            await self.transport.close()
            self.transport = None

    @property
    def reliable(self) -> bool:
        return self.transport is not None and self.transport.reliable

    def _enqueue(self, data: bytes, source: Address) -> None:
        for tap in self.taps:
            tap("in", data, source)
        try:
            self._inbox.put_nowait((data, source))
        except asyncio.QueueFull:
            self.dropped += 1
            logger.warning("sip inbox full, dropped a message from %s:%s", *source)

    # -- sending -----------------------------------------------------------------------------
    async def send_raw(self, msg: SipRequest | SipResponse, dest: Address) -> None:
        """Send outside any transaction (ACK for 2xx, stateless replies). Raises TransportError."""
        assert self.transport is not None, "endpoint not started"
        data = bytes(msg)
        for tap in self.taps:
            tap("out", data, dest)
        await self.transport.send(data, dest)

    async def request(self, req: SipRequest, dest: Address) -> ClientHandle:
        """Start a client transaction for `req` (which carries its Via with a fresh branch)."""
        tx: ClientTransaction
        if req.method == "INVITE":
            tx = ClientInviteTransaction(req, dest, reliable=self.reliable, timers=self.timers)
        else:
            tx = ClientNonInviteTransaction(req, dest, reliable=self.reliable, timers=self.timers)
        handle = ClientHandle(tx)
        self._clients[tx.key] = handle
        await self._execute(tx, tx.start(self.clock()), handle)
        return handle

    async def respond(self, tx: ServerTransaction, resp: SipResponse) -> None:
        await self._execute(tx, tx.respond(resp, self.clock()), None)

    async def confirm_2xx(self, tx: ServerInviteTransaction) -> None:
        await self._execute(tx, tx.ack_2xx(), None)

    async def _execute(
        self,
        tx: ClientTransaction | ServerTransaction,
        cmds: list[Command],
        handle: ClientHandle | None,
    ) -> None:
        for cmd in cmds:
            if isinstance(cmd, Send):
                dest = cmd.dest
                if dest is None:
                    assert isinstance(tx, ServerInviteTransaction | ServerNonInviteTransaction)
                    dest = self._response_dest(tx)
                    if self._would_connect(dest):
                        # a response needing a new TCP connection must not stall the
                        # dispatcher for the connect timeout: send it in the background
                        self._send_later(cmd.message, dest)
                        continue
                try:
                    await self.send_raw(cmd.message, dest)
                except TransportError as exc:
                    logger.warning("send failed: %s", exc)
                    if handle is not None:
                        handle.events.put_nowait(TransactionFailed("transport"))
                        self._forget(tx)
                        return
            elif isinstance(cmd, Deliver) and handle is not None:
                assert isinstance(cmd.message, SipResponse)
                handle.events.put_nowait(cmd.message)
            elif isinstance(cmd, TimedOut):
                if handle is not None:
                    handle.events.put_nowait(TransactionFailed(cmd.timer))
                else:
                    await self._server_timed_out(tx, cmd.timer)
            elif isinstance(cmd, Terminated):
                self._forget(tx)
        self._wake.set()

    def _would_connect(self, dest: Address) -> bool:
        t = self.transport
        return t is not None and t.reliable and not t.has_connection(dest)

    def _send_later(self, msg: SipRequest | SipResponse, dest: Address) -> None:
        async def send() -> None:
            try:
                await self.send_raw(msg, dest)
            except TransportError as exc:
                logger.warning("response not delivered: %s", exc)

        task = asyncio.create_task(send(), name="sip-send-later")
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def _response_dest(self, tx: ServerTransaction) -> Address:
        src = tx.source
        transport = self.transport
        reliable = transport is not None and transport.reliable
        if reliable and src is not None and transport is not None and transport.has_connection(src):
            return src  # RFC 3261 18.2.2: the connection the request came on
        return response_destination(tx.request.top_via)

    def _forget(self, tx: ClientTransaction | ServerTransaction) -> None:
        if isinstance(tx, ClientInviteTransaction | ClientNonInviteTransaction):
            self._clients.pop(tx.key, None)
        else:
            self._servers.pop(tx.key, None)

    async def _server_timed_out(
        self, tx: ClientTransaction | ServerTransaction, timer: str
    ) -> None:
        if timer == "L" and isinstance(tx, ServerInviteTransaction):
            await self._on_2xx_unacked(tx)  # RFC 3261 13.3.1.4: the TU ends the dialog

    # -- receiving ---------------------------------------------------------------------------
    async def _dispatch_loop(self) -> None:
        while True:
            data, source = await self._inbox.get()
            try:
                await self._handle(data, source)
            except Exception:  # one bad message must not stop the dispatcher; logged in full
                logger.exception("error handling a message from %s:%s", *source)

    async def _handle(self, data: bytes, source: Address) -> None:
        result = screen(data, stream=self.reliable)
        if isinstance(result, Rejected):
            # the error text may quote headers (numbers): log its kind and field only
            err = result.error
            logger.info(
                "malformed message from %s:%s: %s (field %s), %s",
                *source,
                type(err).__name__,
                err.field,
                "answered" if result.response is not None else "dropped",
            )
            if result.response is not None and self.transport is not None:
                await self._reply_bytes(result.response, source)
            return
        if isinstance(result, SipResponse):
            key = client_key(result.top_via.branch or "", result.cseq.method)
            handle = self._clients.get(key)
            if handle is None:
                await self._on_stray_response(result)
                return
            await self._execute(handle.tx, handle.tx.on_message(result, self.clock()), handle)
            return
        await self._handle_request(result, source)

    async def _reply_bytes(self, data: bytes, source: Address) -> None:
        assert self.transport is not None
        try:
            await self.transport.send(data, source)
        except TransportError as exc:
            logger.info("could not answer a malformed message: %s", exc)

    async def _handle_request(self, req: SipRequest, source: Address) -> None:
        vias = req.headers.get_all("Via")
        stamped = stamp_via(req.top_via, source)
        req.headers.remove("Via")
        req.headers.add("Via", str(stamped))
        for v in vias[1:]:
            req.headers.add("Via", v)
        key = server_key(req)
        tx = self._servers.get(key)
        if tx is not None:
            await self._execute(tx, tx.on_message(req, self.clock()), None)
            return
        if req.method == "ACK":  # an ACK for a 2xx has its own branch: the dialog's business
            await self._on_request(req, None, source)
            return
        new_tx: ServerTransaction
        if req.method == "INVITE":
            new_tx = ServerInviteTransaction(req, reliable=self.reliable, timers=self.timers)
            new_tx.source = source
            self._servers[new_tx.key] = new_tx
            # RFC 3261 17.2.1: answer 100 at once so the client stops retransmitting
            await self.respond(new_tx, make_response(req, 100))
        else:
            new_tx = ServerNonInviteTransaction(req, reliable=self.reliable, timers=self.timers)
            new_tx.source = source
            self._servers[new_tx.key] = new_tx
        await self._on_request(req, new_tx, source)

    def server_transaction(self, key: TransactionKey) -> ServerTransaction | None:
        return self._servers.get(key)

    # -- timers ------------------------------------------------------------------------------
    def _next_deadline(self) -> float | None:
        deadlines = [
            d
            for d in (
                *(h.tx.next_deadline() for h in self._clients.values()),
                *(t.next_deadline() for t in self._servers.values()),
            )
            if d is not None
        ]
        return min(deadlines) if deadlines else None

    async def _timer_loop(self) -> None:
        while True:
            self._wake.clear()
            due = self._next_deadline()
            delay = None if due is None else max(0.0, due - self.clock())
            if delay is None or delay > 0:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(delay):
                        await self._wake.wait()
                continue
            now = self.clock()
            for handle in list(self._clients.values()):
                d = handle.tx.next_deadline()
                if d is not None and d <= now:
                    await self._execute(handle.tx, handle.tx.on_timer(now), handle)
            for tx in list(self._servers.values()):
                d = tx.next_deadline()
                if d is not None and d <= now:
                    await self._execute(tx, tx.on_timer(now), None)
