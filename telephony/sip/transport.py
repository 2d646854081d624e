"""The socket edge: asyncio UDP and TCP transports for SIP (RFC 3261 section 18, RFC 3581).

Both hand every received message to one callback as `(bytes, source address)`; both send bytes
to an address. UDP drains its non-blocking socket from `loop.add_reader` with a 64 KiB read
(asyncio's DatagramProtocol would read each datagram into a 256 KiB buffer, see DESIGN.md).
TCP cuts each connection's stream with `StreamFramer` and reuses a connection to an address
for both directions; a framing error closes that connection only. TCP accepts at most
`max_per_source` connections from one IP address and closes a connection on which nothing was
received or sent for `idle_timeout` seconds (issue 13 finding 12).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import socket
from collections.abc import Callable
from typing import Literal

from .errors import ParseError, TransportError
from .headers import Via
from .message import MAX_MESSAGE_BYTES, StreamFramer

logger = logging.getLogger(__name__)

Address = tuple[str, int]
OnMessage = Callable[[bytes, Address], None]
TransportKind = Literal["udp", "tcp"]
CONNECT_TIMEOUT = 5.0
TCP_MAX_PER_SOURCE = 16
TCP_IDLE_TIMEOUT = 300.0  # > the registration keep-alive interval (30 s) and any refresh


def response_destination(via: Via) -> Address:
    """Where a response goes (RFC 3261 18.2.2 with RFC 3581 section 4): received + rport."""
    host = via.param("received") or via.host
    if host.startswith("["):
        host = host[1:-1]
    rport = via.param("rport")
    if rport:
        return host, int(rport)
    return host, via.port if via.port is not None else 5060


def stamp_via(via: Via, source: Address) -> Via:
    """RFC 3261 18.2.1 / RFC 3581 4: write the real source on the top Via of a request.

    `received` is always overwritten with the address the packet came from (a `received=`
    written by the sender is never honoured, issue 13 finding 2), and `rport`, when the sender
    asked for it, with the port it came from. Responses then go where the packet came from.
    """
    via = via.with_param("received", source[0])
    if via.param("rport") is not None:
        via = via.with_param("rport", str(source[1]))
    return via


class UdpTransport:
    """One UDP socket; reads are drained by `add_reader`, sends are plain `sendto`."""

    kind: TransportKind = "udp"
    reliable = False

    def __init__(self, sock: socket.socket, on_message: OnMessage) -> None:
        self._sock = sock
        self._on_message = on_message
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(sock.fileno(), self._drain)
        self.local_address: Address = sock.getsockname()[:2]
        self._resolved: dict[Address, Address] = {}

    @classmethod
    async def open(cls, host: str, port: int, on_message: OnMessage) -> UdpTransport:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            sock.setblocking(False)
            sock.bind((host, port))
        except OSError as exc:
            sock.close()
            raise TransportError(f"cannot bind UDP {host}:{port}: {exc}") from exc
        return cls(sock, on_message)

    def _drain(self) -> None:
        for _ in range(256):  # bounded: let other callbacks run under a flood
            try:
                data, addr = self._sock.recvfrom(MAX_MESSAGE_BYTES + 1)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # ICMP errors surface here on Linux; nothing to read
                logger.debug("udp recv error: %s", exc)
                return
            self._on_message(data, (addr[0], addr[1]))

    async def _resolve(self, dest: Address) -> Address:
        """IP literal as is; a host name through the loop's resolver (never a blocking lookup)."""
        try:
            ipaddress.ip_address(dest[0])
        except ValueError:
            cached = self._resolved.get(dest)
            if cached is not None:
                return cached
            try:
                infos = await self._loop.getaddrinfo(dest[0], dest[1], type=socket.SOCK_DGRAM)
            except OSError as exc:
                raise TransportError(f"cannot resolve {dest[0]}: {exc}") from exc
            family = self._sock.family
            usable = [i[4] for i in infos if i[0] == family] or [infos[0][4]]
            resolved = (str(usable[0][0]), int(usable[0][1]))
            self._resolved[dest] = resolved
            return resolved
        return dest

    async def send(self, data: bytes, dest: Address) -> None:
        dest = await self._resolve(dest)
        try:
            self._sock.sendto(data, dest)
        except BlockingIOError:
            await self._loop.sock_sendto(self._sock, data, dest)
        except OSError as exc:
            raise TransportError(f"UDP send to {dest[0]}:{dest[1]} failed: {exc}") from exc

    def has_connection(self, addr: Address) -> bool:
        return False

    async def close(self) -> None:
        self._loop.remove_reader(self._sock.fileno())
        self._sock.close()


class _TcpConnection:
    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, peer: Address
    ) -> None:
        self.reader = reader
        self.writer = writer
        self.peer = peer
        self.framer = StreamFramer()
        self.task: asyncio.Task[None] | None = None
        self.last_sent = 0.0


class TcpTransport:
    """A listening TCP socket plus outbound connections, one per peer address."""

    kind: TransportKind = "tcp"
    reliable = True

    def __init__(
        self,
        on_message: OnMessage,
        *,
        max_per_source: int = TCP_MAX_PER_SOURCE,
        idle_timeout: float = TCP_IDLE_TIMEOUT,
    ) -> None:
        if max_per_source < 1 or idle_timeout <= 0:
            raise ValueError("max_per_source must be at least 1 and idle_timeout positive")
        self._on_message = on_message
        self.max_per_source = max_per_source
        self.idle_timeout = idle_timeout
        self.refused = 0  # connections closed at once: over the per-source cap
        self._server: asyncio.Server | None = None
        self._conns: dict[Address, _TcpConnection] = {}
        self._connecting: dict[Address, asyncio.Lock] = {}
        self.local_address: Address = ("0.0.0.0", 0)

    @classmethod
    async def open(
        cls,
        host: str,
        port: int,
        on_message: OnMessage,
        *,
        max_per_source: int = TCP_MAX_PER_SOURCE,
        idle_timeout: float = TCP_IDLE_TIMEOUT,
    ) -> TcpTransport:
        t = cls(on_message, max_per_source=max_per_source, idle_timeout=idle_timeout)
        try:
            t._server = await asyncio.start_server(t._accepted, host, port, reuse_address=True)
        except OSError as exc:
            raise TransportError(f"cannot listen on TCP {host}:{port}: {exc}") from exc
        sockname = t._server.sockets[0].getsockname()
        t.local_address = (sockname[0], sockname[1])
        return t

    async def _accepted(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        if sum(1 for addr in self._conns if addr[0] == peer[0]) >= self.max_per_source:
            self.refused += 1
            logger.info("tcp: %s has %d connections already, closing", peer[0], self.max_per_source)
            writer.close()
            return
        conn = _TcpConnection(reader, writer, (peer[0], peer[1]))
        self._conns[conn.peer] = conn
        await self._read_loop(conn)

    async def _read_loop(self, conn: _TcpConnection) -> None:
        loop = asyncio.get_running_loop()
        conn.last_sent = loop.time()
        try:
            while True:
                try:
                    async with asyncio.timeout(self.idle_timeout):
                        data = await conn.reader.read(65536)
                except TimeoutError:
                    if loop.time() - conn.last_sent < self.idle_timeout:
                        continue  # we sent on it lately: not idle
                    logger.info("tcp connection %s:%s idle, closing", *conn.peer)
                    break
                if not data:
                    break
                for frame in conn.framer.feed(data):
                    self._on_message(frame, conn.peer)
        except ParseError as exc:
            logger.warning("tcp framing error from %s:%s, closing: %s", *conn.peer, exc)
        except ConnectionError as exc:
            logger.debug("tcp connection %s:%s lost: %s", *conn.peer, exc)
        finally:
            if self._conns.get(conn.peer) is conn:
                del self._conns[conn.peer]
            conn.writer.close()

    def has_connection(self, addr: Address) -> bool:
        return addr in self._conns

    async def _connection(self, dest: Address) -> _TcpConnection:
        conn = self._conns.get(dest)
        if conn is not None:
            return conn
        lock = self._connecting.setdefault(dest, asyncio.Lock())
        async with lock:
            conn = self._conns.get(dest)
            if conn is not None:
                return conn
            try:
                reader, writer = await asyncio.wait_for(
                    asyncio.open_connection(dest[0], dest[1]), CONNECT_TIMEOUT
                )
            except (OSError, TimeoutError) as exc:
                raise TransportError(f"TCP connect to {dest[0]}:{dest[1]} failed: {exc}") from exc
            conn = _TcpConnection(reader, writer, dest)
            self._conns[dest] = conn
            conn.task = asyncio.create_task(
                self._read_loop(conn), name=f"sip-tcp-{dest[0]}:{dest[1]}"
            )
            return conn

    async def send(self, data: bytes, dest: Address) -> None:
        conn = await self._connection(dest)
        try:
            conn.writer.write(data)
            conn.last_sent = asyncio.get_running_loop().time()
            await asyncio.wait_for(conn.writer.drain(), CONNECT_TIMEOUT)
        except (OSError, TimeoutError) as exc:
            self._conns.pop(dest, None)
            conn.writer.close()
            raise TransportError(f"TCP send to {dest[0]}:{dest[1]} failed: {exc}") from exc

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        conns = list(self._conns.values())
        self._conns.clear()
        for conn in conns:
            conn.writer.close()
            if conn.task is not None:
                conn.task.cancel()
        for conn in conns:
            if conn.task is not None:
                with contextlib.suppress(asyncio.CancelledError):
                    await conn.task
            with contextlib.suppress(OSError):
                await conn.writer.wait_closed()
        if self._server is not None:
            await self._server.wait_closed()


Transport = UdpTransport | TcpTransport


async def open_transport(
    kind: TransportKind,
    host: str,
    port: int,
    on_message: OnMessage,
    *,
    tcp_max_per_source: int = TCP_MAX_PER_SOURCE,
    tcp_idle_timeout: float = TCP_IDLE_TIMEOUT,
) -> Transport:
    if kind == "udp":
        return await UdpTransport.open(host, port, on_message)
    if kind == "tcp":
        return await TcpTransport.open(
            host, port, on_message, max_per_source=tcp_max_per_source, idle_timeout=tcp_idle_timeout
        )
    raise ValueError(f"unknown transport {kind!r}")
