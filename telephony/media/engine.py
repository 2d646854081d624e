"""The media engine: owns the ticker, the RTP port range and the prompt cache."""

from __future__ import annotations

import asyncio
import errno
import logging
import secrets
import socket

from telephony.media.conference import Conference
from telephony.media.endpoint import RtpEndpoint
from telephony.media.errors import MediaError, PortRangeExhausted
from telephony.media.playback import Prompt, PromptCache
from telephony.media.poller import RtpPoller
from telephony.media.ticker import Ticker

log = logging.getLogger(__name__)


RANDOM_TRIES = 32


class MediaEngine:
    """RTP endpoints and conferences of one process, all driven by one 20 ms ticker.

    Endpoints take a random even port from `port_range` for RTP and the next odd one for RTCP
    (a stranger cannot guess the next call's port from the last one; issue 13 finding 11).
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port_range: tuple[int, int] = (20000, 29999),
        *,
        latch: bool = True,
        jitter_prefill: int = 2,
        prompts: PromptCache | None = None,
    ) -> None:
        lo, hi = port_range
        if not 1024 <= lo < hi <= 65535:
            raise ValueError(f"bad RTP port range {lo}-{hi}")
        self.host = host
        self.port_range = (lo + lo % 2, hi)
        self.prompts = prompts or PromptCache()
        self.ticker = Ticker()
        self._latch = latch
        self._prefill = jitter_prefill
        self._endpoints: dict[int, RtpEndpoint] = {}
        self._running = False
        self._poller: RtpPoller | None = None
        self.packets_lost_closed = 0  # RTP packets lost on endpoints already closed

    @property
    def endpoints(self) -> list[RtpEndpoint]:
        return list(self._endpoints.values())

    async def start(self) -> None:
        self._poller = RtpPoller(asyncio.get_running_loop())
        self.ticker.start()
        self._running = True

    async def stop(self) -> None:
        """Close every endpoint and stop the ticker."""
        self._running = False
        for ep in list(self._endpoints.values()):
            await ep.close()
        await self.ticker.stop()
        if self._poller is not None:
            self._poller.close()
            self._poller = None

    async def __aenter__(self) -> MediaEngine:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def open_endpoint(self, label: str, *, inband_dtmf: bool | None = None) -> RtpEndpoint:
        """Bind a new leg's sockets now (its local port goes into our SDP).

        `inband_dtmf`: None listens for tones only when RFC 4733 is not agreed; True always.
        """
        if not self._running or self._poller is None:
            raise MediaError("media engine not started")
        rtp_sock, rtcp_sock = self._bind_pair()
        ep = RtpEndpoint(
            label,
            rtp_sock,
            rtcp_sock,
            self.prompts,
            self._poller,
            latch=self._latch,
            inband_dtmf=inband_dtmf,
            jitter_prefill=self._prefill,
            on_close=self._closed,
        )
        self._endpoints[ep.local_port] = ep
        self.ticker.add(ep)
        return ep

    def create_conference(
        self, name: str = "conference", hold_music: Prompt | None = None
    ) -> Conference:
        return Conference(self.ticker, name, hold_music)

    def packets_lost_total(self) -> int:
        """RTP packets lost (RFC 3550 A.3) over every endpoint this engine ever had."""
        return self.packets_lost_closed + sum(
            ep.stats.packets_lost for ep in list(self._endpoints.values())
        )

    def _closed(self, ep: RtpEndpoint) -> None:
        self.packets_lost_closed += ep.stats.packets_lost
        self.ticker.discard(ep)
        self._endpoints.pop(ep.local_port, None)

    def _bind_pair(self) -> tuple[socket.socket, socket.socket]:
        """A random free even port; after RANDOM_TRIES misses, every port from a random start."""
        lo, hi = self.port_range
        count = (hi - lo + 1) // 2
        for _ in range(min(count, RANDOM_TRIES)):
            port = lo + 2 * secrets.randbelow(count)
            pair = None if port in self._endpoints else self._try_bind(port)
            if pair is not None:
                return pair
        start = secrets.randbelow(count)
        for i in range(count):
            port = lo + 2 * ((start + i) % count)
            pair = None if port in self._endpoints else self._try_bind(port)
            if pair is not None:
                return pair
        raise PortRangeExhausted(lo, hi)

    def _try_bind(self, port: int) -> tuple[socket.socket, socket.socket] | None:
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        socks: list[socket.socket] = []
        try:
            for p in (port, port + 1):
                s = socket.socket(family, socket.SOCK_DGRAM)
                socks.append(s)
                s.setblocking(False)
                s.bind((self.host, p))
        except OSError as exc:
            for s in socks:
                s.close()
            if exc.errno not in (errno.EADDRINUSE, errno.EACCES):
                raise
            return None
        return socks[0], socks[1]
