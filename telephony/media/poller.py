"""One readiness callback for every RTP socket of the process.

asyncio runs one callback handle per ready socket per loop iteration; with hundreds of legs
that overhead is as large as the receiving itself. The poller registers every RTP socket with
its own epoll set and gives asyncio a single descriptor, the epoll set, to watch: when it is
readable, one callback reads one datagram from each ready socket, in a tight loop. Where epoll
does not exist (not Linux), each socket gets its own `loop.add_reader`, as usual.
"""

from __future__ import annotations

import asyncio
import select
from collections.abc import Callable

BATCH = 128  # datagrams per callback (~0.5 ms), then back to the loop: the tick is never late


class RtpPoller:
    """Dispatches readiness of many sockets through one asyncio reader."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._handlers: dict[int, Callable[[float], None]] = {}
        self._epoll = select.epoll() if hasattr(select, "epoll") else None
        if self._epoll is not None:
            loop.add_reader(self._epoll.fileno(), self._on_ready)

    def register(self, fd: int, handler: Callable[[float], None]) -> None:
        """Call `handler(now)` whenever `fd` is readable; it should read one datagram.
        `now` is the loop time, read once per batch."""
        self._handlers[fd] = handler
        if self._epoll is not None:
            self._epoll.register(fd, select.EPOLLIN)
        else:
            loop = self._loop
            loop.add_reader(fd, lambda: handler(loop.time()))

    def unregister(self, fd: int) -> None:
        if self._handlers.pop(fd, None) is None:
            return
        if self._epoll is not None:
            self._epoll.unregister(fd)
        else:
            self._loop.remove_reader(fd)

    def close(self) -> None:
        for fd in list(self._handlers):
            self.unregister(fd)
        if self._epoll is not None:
            self._loop.remove_reader(self._epoll.fileno())
            self._epoll.close()
            self._epoll = None

    def _on_ready(self) -> None:
        epoll = self._epoll
        if epoll is None:
            return
        handlers = self._handlers
        now = self._loop.time()
        for fd, _ in epoll.poll(0, BATCH):  # more ready sockets keep the set readable: next round
            handler = handlers.get(fd)
            if handler is not None:
                handler(now)
