"""The socket edge: asyncio UDP and TCP transports for SIP (RFC 3261 section 18, RFC 3581).

Both hand every received message to one callback as `(bytes, source address)`; both send bytes
to an address. UDP drains its non-blocking socket from `loop.add_reader` with a 64 KiB read
(asyncio's DatagramProtocol would read each datagram into a 256 KiB buffer, see DESIGN.md).
TCP cuts each connection's stream with `StreamFramer` and reuses a connection to an address
for both directions; a framing error closes that connection only.
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
    """RFC 3261 18.2.1 / RFC 3581 4: note the real source on the top Via of a request."""
    host = via.host[1:-1] if via.host.startswith("[") else via.host
    if host != source[0] or via.param("rport") is not None:
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


class TcpTransport:
    """A listening TCP socket plus outbound connections, one per peer address."""

    kind: TransportKind = "tcp"
    reliable = True

    def __init__(self, on_message: OnMessage) -> None:
        self._on_message = on_message
        self._server: asyncio.Server | None = None
        self._conns: dict[Address, _TcpConnection] = {}
        self._connecting: dict[Address, asyncio.Lock] = {}
        self.local_address: Address = ("0.0.0.0", 0)

    @classmethod
    async def open(cls, host: str, port: int, on_message: OnMessage) -> TcpTransport:
        t = cls(on_message)
        try:
            t._server = await asyncio.start_server(t._accepted, host, port, reuse_address=True)
        except OSError as exc:
            raise TransportError(f"cannot listen on TCP {host}:{port}: {exc}") from exc
        sockname = t._server.sockets[0].getsockname()
        t.local_address = (sockname[0], sockname[1])
        return t

    async def _accepted(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        conn = _TcpConnection(reader, writer, (peer[0], peer[1]))
        self._conns[conn.peer] = conn
        await self._read_loop(conn)

    async def _read_loop(self, conn: _TcpConnection) -> None:
        try:
            while True:
                data = await conn.reader.read(65536)
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
    kind: TransportKind, host: str, port: int, on_message: OnMessage
) -> Transport:
    if kind == "udp":
        return await UdpTransport.open(host, port, on_message)
    if kind == "tcp":
        return await TcpTransport.open(host, port, on_message)
    raise ValueError(f"unknown transport {kind!r}")
