"""The transaction layer (RFC 3261 17) at work: one transport, the live transactions, their timers.

`TransactionLayer` owns the receive queue (one dispatcher task handles messages in arrival order),
the table of client and server transactions and one timer task that sleeps until the nearest
transaction deadline (a heap of deadlines; time comes from the injected clock). It executes the
transactions' commands and passes to its user (the UA) what the transactions do not absorb.

Before anything is parsed, a datagram from a source the `Gate` does not trust takes a token
from that source's bucket (`SourceLimiter`); without one it is dropped. Before a server
transaction is created, the `Gate` admits the request, refuses it (answered once, statelessly,
to the packet's real source: never retransmitted) or drops it; `refusals` counts both (issue 13
finding 1).

* `on_request(request, server_tx | None, source)`: new requests; an ACK comes with None
* `on_stray_response(response)`: responses no transaction matches (2xx retransmissions)
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from .admission import ACCEPT, Accept, Drop, Gate, RefusalCounts, Refuse, SourceLimiter
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
YIELD_EVERY = 16  # the dispatcher lets the loop run (media ticks) after this many messages


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
        gate: Gate | None = None,
        limiter: SourceLimiter | None = None,
    ) -> None:
        self._factory = transport_factory
        self.timers = timers
        self.clock = clock
        self._on_request = on_request
        self._on_stray_response = on_stray_response
        self._on_2xx_unacked = on_2xx_unacked
        self._gate = gate
        self._limiter = limiter
        self.refusals = RefusalCounts()
        self.transport: Transport | None = None
        self._inbox: asyncio.Queue[tuple[bytes, Address]] = asyncio.Queue(MAX_QUEUE)
        self._clients: dict[TransactionKey, ClientHandle] = {}
        self._servers: dict[TransactionKey, ServerTransaction] = {}
        self._wake = asyncio.Event()
        # timer heap: (deadline, sequence, transaction); `_due` holds each transaction's live
        # entry, an entry whose deadline differs from it is stale and skipped when popped
        self._heap: list[tuple[float, int, ClientTransaction | ServerTransaction]] = []
        self._due: dict[int, float] = {}
        self._seq = itertools.count()
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
        gate, limiter = self._gate, self._limiter
        if (
            gate is not None
            and limiter is not None
            and not gate.trusted_source(source[0])
            and not limiter.allow(source[0], self.clock())
        ):
            self.refusals["rate_limited"] += 1
            return
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
        self._schedule(tx)

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
        self._due.pop(id(tx), None)

    @property
    def live_transactions(self) -> int:
        """Client plus server transactions not yet terminated."""
        return len(self._clients) + len(self._servers)

    async def _server_timed_out(
        self, tx: ClientTransaction | ServerTransaction, timer: str
    ) -> None:
        if timer == "L" and isinstance(tx, ServerInviteTransaction):
            await self._on_2xx_unacked(tx)  # RFC 3261 13.3.1.4: the TU ends the dialog

    # -- receiving ---------------------------------------------------------------------------
    async def _dispatch_loop(self) -> None:
        for handled in itertools.count(1):
            data, source = await self._inbox.get()
            try:
                await self._handle(data, source)
            except Exception:  # one bad message must not stop the dispatcher; logged in full
                logger.exception("error handling a message from %s:%s", *source)
            if handled % YIELD_EVERY == 0:
                await asyncio.sleep(0)  # a full inbox must not starve the media tick

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
        admission = ACCEPT if self._gate is None else self._gate.admit(req, source)
        if not isinstance(admission, Accept):
            await self._refuse(admission, req, source)
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

    async def _refuse(self, admission: Refuse | Drop, req: SipRequest, source: Address) -> None:
        """Stateless: no transaction, one answer to where the packet came from (or none)."""
        self.refusals[admission.reason] += 1
        if isinstance(admission, Drop) or req.method == "ACK":
            return
        try:
            await self.send_raw(admission.response, source)
        except TransportError as exc:
            logger.info("refusal to %s not sent: %s", source[0], exc)

    def server_transaction(self, key: TransactionKey) -> ServerTransaction | None:
        return self._servers.get(key)

    # -- timers ------------------------------------------------------------------------------
    def _schedule(self, tx: ClientTransaction | ServerTransaction) -> None:
        """Note the transaction's next deadline in the heap (once per distinct deadline)."""
        if not self._is_live(tx):
            return
        due = tx.next_deadline()
        if due is None:
            self._due.pop(id(tx), None)
            return
        if self._due.get(id(tx)) == due:
            return
        self._due[id(tx)] = due
        heapq.heappush(self._heap, (due, next(self._seq), tx))
        if self._heap[0][2] is tx:
            self._wake.set()  # a new earliest deadline: the timer task sleeps too long

    def _is_live(self, tx: ClientTransaction | ServerTransaction) -> bool:
        if isinstance(tx, ClientInviteTransaction | ClientNonInviteTransaction):
            handle = self._clients.get(tx.key)
            return handle is not None and handle.tx is tx
        return self._servers.get(tx.key) is tx

    async def _timer_loop(self) -> None:
        while True:
            self._wake.clear()
            heap = self._heap
            while heap and self._due.get(id(heap[0][2])) != heap[0][0]:
                heapq.heappop(heap)  # stale: rescheduled or forgotten
            delay = None if not heap else heap[0][0] - self.clock()
            if delay is None or delay > 0:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(delay):
                        await self._wake.wait()
                continue
            _, _, tx = heapq.heappop(heap)
            del self._due[id(tx)]
            now = self.clock()
            if isinstance(tx, ClientInviteTransaction | ClientNonInviteTransaction):
                handle = self._clients.get(tx.key)
                if handle is not None and handle.tx is tx:
                    await self._execute(tx, tx.on_timer(now), handle)
            elif self._servers.get(tx.key) is tx:
                await self._execute(tx, tx.on_timer(now), None)
