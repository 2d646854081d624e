"""The RTCP side of one leg (RFC 3550 6): our SR + SDES CNAME every few seconds, and what the
peer reports about our stream. The socket is the leg's odd port (RTP port + 1)."""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Callable

from telephony.media import rtcp
from telephony.media.errors import PacketError
from telephony.media.rtp import ReceptionStats
from telephony.media.stats import RtcpFeedback

log = logging.getLogger(__name__)

MAX_DATAGRAM = 2048
DRAIN_LIMIT = 16


class RtcpSession:
    """Sends reports for one leg and keeps the peer's latest report block about us."""

    def __init__(self, sock: socket.socket, label: str, clock: Callable[[], float]) -> None:
        self.sock = sock
        self.label = label
        self.feedback: RtcpFeedback | None = None
        self._clock = clock

    def on_readable(self, peer_host: str | None, our_ssrc: int) -> None:
        """Read the waiting reports; only the negotiated peer's host is listened to."""
        for _ in range(DRAIN_LIMIT):
            try:
                data, addr = self.sock.recvfrom(MAX_DATAGRAM)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                log.debug("leg %s: RTCP recv error %s", self.label, exc)
                return
            if peer_host is None or addr[0] != peer_host:
                continue
            try:
                packets = rtcp.parse_compound(data)
            except PacketError as exc:
                log.debug("leg %s: dropped RTCP: %s", self.label, exc)
                continue
            for p in packets:
                if isinstance(p, rtcp.SenderReport | rtcp.ReceiverReport):
                    for block in p.reports:
                        if block.ssrc == our_ssrc:
                            self.feedback = RtcpFeedback.from_block(block, self._clock())

    def send_report(
        self,
        dest: tuple[str, int],
        ssrc: int,
        rtp_timestamp: int,
        packets: int,
        octets: int,
        rx: ReceptionStats | None,
        rx_ssrc: int | None,
    ) -> None:
        """Send SR (with a report block about the peer's stream, if any) + SDES CNAME."""
        blocks: tuple[rtcp.ReportBlock, ...] = ()
        if rx is not None and rx_ssrc is not None:
            block = rtcp.ReportBlock(
                rx_ssrc, rx.fraction_lost(), rx.lost, rx.extended_max_seq, rx.jitter
            )
            blocks = (block,)
        report = rtcp.SenderReport(
            ssrc, rtcp.ntp_timestamp(time.time()), rtp_timestamp, packets, octets, blocks
        )
        sdes = rtcp.SourceDescription(((ssrc, f"{self.label}@linkcall"),))
        try:
            self.sock.sendto(bytes(report) + bytes(sdes), dest)
        except OSError as exc:
            log.debug("leg %s: RTCP send failed: %s", self.label, exc)
