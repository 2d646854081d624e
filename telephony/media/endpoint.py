"""One RTP leg: a UDP socket pair (RTP on an even port, RTCP on the next), symmetric RTP,
jitter buffer, DTMF on every path, playback, and statistics.

Receiving runs in `loop.add_reader` callbacks that drain the socket (the default asyncio
datagram protocol allocates a 256 KiB buffer per datagram; see DESIGN.md). Decoding, RFC 4733
and in-band detection happen there, so the tick only pops a frame and sends one packet.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import os
import random
import socket
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from telephony.media import g711
from telephony.media.digits import DigitStream
from telephony.media.dtmf import DigitMerger, EventReceiver, EventSender, TelephoneEvent
from telephony.media.errors import EndpointClosed, PacketError
from telephony.media.g711 import FRAME_SAMPLES, audioop
from telephony.media.inband import InbandDetector
from telephony.media.jitter import JitterBuffer
from telephony.media.mixer import mix
from telephony.media.playback import PlaybackHandle, PlaybackOutcome, Player, Prompt, PromptCache
from telephony.media.poller import RtpPoller
from telephony.media.rtcp_session import RtcpSession
from telephony.media.rtp import HEADER, HEADER_SIZE, ReceptionStats, RtpPacket
from telephony.media.stats import LegStats
from telephony.types import Codec, Direction, DtmfDigit, NegotiatedMedia

if TYPE_CHECKING:
    from telephony.media.conference import Conference

log = logging.getLogger(__name__)
ulaw2lin, alaw2lin = audioop.ulaw2lin, audioop.alaw2lin

MAX_DATAGRAM = 2048
_G711_PACKET_SIZE = HEADER_SIZE + FRAME_SAMPLES  # 20 ms, one octet per sample
_unpack_g711_packet = struct.Struct(f"!BBHII{FRAME_SAMPLES}s").unpack  # exactly that long
_G711_DECODERS = {  # the second octet: PCMU or PCMA, with or without the marker
    0: ulaw2lin,
    0x80: ulaw2lin,
    8: alaw2lin,
    0x88: alaw2lin,
}
_pack_header = HEADER.pack
_pack_g711_packet = struct.Struct(f"!BBHII{FRAME_SAMPLES}s").pack
RTCP_INTERVAL_TICKS = 250  # 5 s (RFC 3550 6.2 minimum)
DTMF_VOLUME = 10


class EndpointState(enum.Enum):
    OPEN = "open"  # bound, waiting for configure()
    ACTIVE = "active"
    CLOSED = "closed"


@dataclass(slots=True)
class _Tx:
    ssrc: int = field(default_factory=lambda: random.getrandbits(32))
    seq: int = field(default_factory=lambda: random.getrandbits(16))
    ts_base: int = field(default_factory=lambda: random.getrandbits(32))
    packets: int = 0
    octets: int = 0
    errors: int = 0
    dtmf: list[tuple[EventSender, asyncio.Future[None]]] = field(default_factory=list)


class RtpEndpoint:
    """One leg's media. Created by MediaEngine.open_endpoint; configure() once SDP is agreed."""

    def __init__(
        self,
        label: str,
        rtp_sock: socket.socket,
        rtcp_sock: socket.socket,
        prompts: PromptCache,
        poller: RtpPoller,
        *,
        latch: bool = True,
        inband_dtmf: bool | None = None,
        jitter_prefill: int = 2,
        on_close: Callable[[RtpEndpoint], None] | None = None,
    ) -> None:
        self.label = label
        self.local_host, self.local_port = rtp_sock.getsockname()[:2]
        self.lost = False  # only a media worker's endpoint is ever lost (calls.media_workers)
        self.state = EndpointState.OPEN
        self.conference: Conference | None = None
        self.digits = DigitStream()
        self.media: NegotiatedMedia | None = None
        self.error: Exception | None = None  # set when its tick failed: media stopped
        self._sock = rtp_sock
        self._rtcp_sock = rtcp_sock
        self._prompts = prompts
        self._latch = latch
        self._inband_setting = inband_dtmf
        self._on_close = on_close
        self._loop = asyncio.get_running_loop()
        self._remote: tuple[str, int] | None = None
        self._remote_rtcp: tuple[str, int] | None = None
        self._latched = False
        self._codec = Codec.PCMU
        self._lin2law = audioop.lin2ulaw  # s16le -> G.711 of the agreed codec (C, per packet)
        self._payload_type = 0
        self._dtmf_pt: int | None = None
        self._send = False
        self._receive = False
        self._inband: InbandDetector | None = None
        self._jitter = JitterBuffer(prefill=jitter_prefill)
        self._rx: ReceptionStats | None = None
        self._rx_ssrc: int | None = None
        self._rx_folded = (0, 0)  # received, lost of earlier sources
        self._candidate: tuple[int, int] | None = None  # a new SSRC on probation, its last seq
        self._events = EventReceiver()
        self._merger = DigitMerger()
        self._player = Player()
        self._tx = _Tx()
        self._counters = LegStats()
        self._rtcp = RtcpSession(rtcp_sock, label, self._loop.time)
        self._rtcp_phase = random.randrange(RTCP_INTERVAL_TICKS)
        self._rtcp_due = 0  # no tick index before this one has a report due
        self._poller = poller
        poller.register(rtp_sock.fileno(), self._on_rtp_readable)
        self._loop.add_reader(rtcp_sock.fileno(), self._on_rtcp_readable)

    def __repr__(self) -> str:
        return f"<RtpEndpoint {self.label} :{self.local_port} {self.state.value}>"

    def _set_state(self, state: EndpointState) -> None:
        log.debug("leg %s: %s -> %s", self.label, self.state.value, state.value)
        self.state = state

    # -- control --------------------------------------------------------------------------

    def configure(self, media: NegotiatedMedia) -> None:
        """Apply (or re-apply, for a re-INVITE) the negotiated media."""
        self.ensure_open()
        if media.remote_port and media.remote_host not in ("0.0.0.0", "::"):
            remote = (media.remote_host, media.remote_port)
        else:
            remote = None
        if remote != self._remote:
            self._remote = remote
            self._remote_rtcp = (remote[0], remote[1] + 1) if remote else None
            self._latched = False
        if media.codec is not self._codec:
            self._jitter.reset()
        self._codec = media.codec
        self._lin2law = audioop.lin2ulaw if media.codec is Codec.PCMU else audioop.lin2alaw
        self._payload_type = media.codec.payload_type
        self._dtmf_pt = media.dtmf_payload_type
        d = media.direction
        self._send = remote is not None and d in (Direction.SENDRECV, Direction.SENDONLY)
        self._receive = d in (Direction.SENDRECV, Direction.RECVONLY)
        use_inband = self._inband_setting
        if use_inband is None:  # auto: listen for tones only when RFC 4733 was not agreed
            use_inband = media.dtmf_payload_type is None
        self._inband = (self._inband or InbandDetector()) if use_inband else None
        self.media = media
        self._set_state(EndpointState.ACTIVE)

    def inject_dtmf(self, digit: DtmfDigit) -> None:
        """A key press the user agent received out of band (SIP INFO)."""
        self._deliver(digit)

    async def send_dtmf(self, digit: str, duration_ms: int = 160) -> None:
        """Send one key press as RFC 4733 events; returns once its end packets are sent."""
        self.ensure_open()
        if self._dtmf_pt is None:
            raise ValueError(f"leg {self.label}: peer did not agree to telephone-event")
        if not self._send:
            raise ValueError(f"leg {self.label}: not sending media (no peer address, or on hold)")
        sender = EventSender(digit, 0, duration_ms, DTMF_VOLUME)
        fut: asyncio.Future[None] = self._loop.create_future()
        self._tx.dtmf.append((sender, fut))
        await asyncio.wait_for(fut, timeout=duration_ms / 1000 + 5.0)

    def play(
        self, prompt: str | os.PathLike[str] | Prompt, *, interrupt_on_dtmf: bool = True
    ) -> PlaybackHandle:
        """Queue a prompt (a Prompt or a WAV path, converted once and cached)."""
        self.ensure_open()
        if not isinstance(prompt, Prompt):
            prompt = self._prompts.load(Path(prompt))
        return self._player.enqueue(PlaybackHandle(prompt, interrupt_on_dtmf))

    def play_tone(self, freq: float, ms: int, level: float = 0.25) -> PlaybackHandle:
        return self.play(Prompt.tone(freq, ms, level), interrupt_on_dtmf=False)

    def play_silence(self, ms: int) -> PlaybackHandle:
        return self.play(Prompt.silence(ms), interrupt_on_dtmf=False)

    def stop_playback(self) -> None:
        self._player.stop()

    @property
    def stats(self) -> LegStats:
        """A snapshot of this leg's counters."""
        s = self._counters
        rx = self._rx
        received, lost = self._rx_folded
        jb = self._jitter.counters
        return LegStats(
            packets_received=received + (rx.received if rx else 0),
            packets_lost=lost + (rx.lost if rx else 0),
            jitter_ms=rx.jitter_ms if rx else 0.0,
            late=jb.late,
            concealed=jb.concealed,
            played=jb.played,
            jitter_dropped=jb.overflow_dropped + jb.trimmed,
            packets_sent=self._tx.packets,
            send_errors=self._tx.errors,
            rejected_source=s.rejected_source,
            malformed=s.malformed,
            unknown_payload=s.unknown_payload,
            ssrc_changes=s.ssrc_changes,
            dtmf_received=s.dtmf_received,
            dtmf_duplicates=self._merger.duplicates,
            remote=self._rtcp.feedback,
        )

    async def close(self) -> None:
        """Stop media, release the ports, end playback and the digit stream."""
        if self.state is EndpointState.CLOSED:
            return
        self._set_state(EndpointState.CLOSED)
        if self.conference is not None:
            self.conference.remove(self)  # closed: it does not go on alone
        self._poller.unregister(self._sock.fileno())
        self._loop.remove_reader(self._rtcp_sock.fileno())
        self._sock.close()
        self._rtcp_sock.close()
        self._player.stop(PlaybackOutcome.CLOSED)
        for _, fut in self._tx.dtmf:
            if not fut.done():
                fut.set_exception(EndpointClosed(self.label))
        self._tx.dtmf.clear()
        self.digits.close()
        if self._on_close is not None:
            self._on_close(self)

    def ensure_open(self) -> None:
        """Raise EndpointClosed once the leg was closed."""
        if self.state is EndpointState.CLOSED:
            raise EndpointClosed(self.label)

    # -- receive (reader callbacks) -------------------------------------------------------

    def _on_rtp_readable(self, now: float) -> None:
        """Read one datagram: the poller calls again while more are queued (level-triggered),
        and at one packet per 20 ms a drain loop would mostly pay for the final EAGAIN."""
        try:
            data, addr = self._sock.recvfrom(MAX_DATAGRAM)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:  # e.g. ICMP errors reported on the socket
            log.debug("leg %s: recv error %s", self.label, exc)
            return
        self._on_datagram(data, addr, now)

    def _accept_source(self, addr: tuple[str, int], data: bytes) -> bool:
        """Symmetric RTP: only the signalled address and port. With latching on (a NAT may
        rewrite the peer's port), the first authentic packet from the signalled host (RTP
        version 2 with a payload type we agreed) may move us to its port, once, and only
        before anything came from the signalled port; then nothing else is accepted."""
        remote = self._remote
        if addr[:2] == remote:
            return True
        if (
            self._latch
            and not self._latched
            and remote is not None
            and addr[0] == remote[0]
            and self._authentic(data)
        ):
            log.info("leg %s: latched RTP to %s:%d", self.label, addr[0], addr[1])
            self._remote = (addr[0], addr[1])
            self._remote_rtcp = (addr[0], addr[1] + 1)
            self._latched = True
            return True
        self._counters.rejected_source += 1
        return False

    def _authentic(self, data: bytes) -> bool:
        """Looks like the peer's RTP: version 2, a payload type we negotiated."""
        if len(data) <= HEADER_SIZE or data[0] >> 6 != 2:
            return False
        pt = data[1] & 0x7F
        return pt == self._payload_type or (self._dtmf_pt is not None and pt == self._dtmf_pt)

    def _on_datagram(self, data: bytes, addr: tuple[str, int], now: float) -> None:
        """One datagram from `addr`. The usual packet (20 ms of G.711 with a plain header, from
        the current source) is handled here; everything else by `_on_packet`, which gives the
        same result for the usual packet too (tested), only with more steps."""
        if not self._receive:
            return
        if addr != self._remote and not self._accept_source(addr, data):
            return
        self._latched = True  # media flows from the peer: no other source can latch now
        if len(data) == _G711_PACKET_SIZE:  # fast path: 20 ms of G.711, no CSRC/extension/padding
            first, second, seq16, timestamp, ssrc, payload = _unpack_g711_packet(data)
            decode = _G711_DECODERS.get(second)
            if first == 0x80 and decode is not None and ssrc == self._rx_ssrc:
                seq = self._rx.update(seq16, timestamp, now)  # type: ignore[union-attr]
                if seq is None:
                    return
                pcm = decode(payload, 2)  # 320 bytes
                if self._jitter.push(seq, pcm) and self._inband is not None:
                    found = self._inband.feed(pcm, now)
                    if found is not None:
                        self._deliver(found)
                return
        self._on_packet(data, now)

    def _on_packet(self, data: bytes, now: float) -> None:
        """Any RTP packet from the peer (the general path of `_on_datagram`)."""
        if len(data) > HEADER_SIZE and data[0] == 0x80:  # no CSRC, extension, padding
            _, second, seq16, timestamp, ssrc = HEADER.unpack_from(data)
            payload = data[HEADER_SIZE:]
            if 200 <= second <= 204:
                self._counters.malformed += 1
                return
        else:
            try:
                pkt = RtpPacket.parse(data)
            except PacketError as exc:
                self._counters.malformed += 1
                log.debug("leg %s: dropped datagram: %s", self.label, exc)
                return
            second = pkt.payload_type
            seq16, timestamp, ssrc, payload = (
                pkt.sequence_number,
                pkt.timestamp,
                pkt.ssrc,
                pkt.payload,
            )
        if ssrc != self._rx_ssrc and not self._switch_source(ssrc, seq16):
            return
        pt = second & 0x7F
        rx = self._rx
        assert rx is not None
        if pt == 0 or pt == 8:
            seq = rx.update(seq16, timestamp, now)
            if seq is None:
                return
            pcm = ulaw2lin(payload, 2) if pt == 0 else alaw2lin(payload, 2)
            if len(pcm) != g711.FRAME_BYTES:
                pcm = (pcm + g711.SILENCE_FRAME)[: g711.FRAME_BYTES]
            if self._jitter.push(seq, pcm) and self._inband is not None:
                found = self._inband.feed(pcm, now)
                if found is not None:
                    self._deliver(found)
        elif pt == self._dtmf_pt:
            rx.update(seq16, None, now)
            try:
                event = TelephoneEvent.parse(payload)
            except PacketError:
                self._counters.malformed += 1
                return
            for digit in self._events.feed(timestamp, event, now):
                self._deliver(digit)
        else:
            rx.update(seq16, None, now)
            self._counters.unknown_payload += 1

    def _switch_source(self, ssrc: int, seq: int) -> bool:
        """A packet with another SSRC (RFC 3550 8.2: the peer restarted its stream). The first
        source is taken at once; a change needs two packets in sequence (A.1 probation), so a
        stray datagram cannot reset the leg."""
        if self._rx is not None and self._candidate != (ssrc, (seq - 1) & 0xFFFF):
            self._candidate = (ssrc, seq)
            return False
        self._candidate = None
        if self._rx is not None:
            received, lost = self._rx_folded
            self._rx_folded = (received + self._rx.received, lost + self._rx.lost)
            self._counters.ssrc_changes += 1
            log.info("leg %s: SSRC changed to %08x", self.label, ssrc)
        self._rx = ReceptionStats()
        self._rx_ssrc = ssrc
        self._jitter.reset()
        return True

    def _deliver(self, digit: DtmfDigit) -> None:
        if self.state is EndpointState.CLOSED or not self._merger.accept(digit):
            return
        self._counters.dtmf_received += 1
        log.info("leg %s: DTMF %s via %s", self.label, digit.digit, digit.source)
        self.digits.put(digit)
        self._player.on_digit()

    def _on_rtcp_readable(self) -> None:
        self._rtcp.on_readable(self._remote[0] if self._remote else None, self._tx.ssrc)

    # -- tick side --------------------------------------------------------------------------

    def pull(self) -> bytes:
        """This tick's received audio (s16le, 20 ms), concealed when missing."""
        if self._events.pending:
            for digit in self._events.poll(self._loop.time()):
                self._deliver(digit)
        return self._jitter.pop()

    def push(self, pcm: bytes, index: int) -> None:
        """Send this tick's audio (plus any prompt), or a DTMF event packet instead."""
        if self._player.active:
            frame = self._player.next_frame()
            if frame is not None:
                pcm = frame if pcm is g711.SILENCE_FRAME else mix((pcm, frame))
        if not self._send:
            return
        tx = self._tx
        timestamp = tx.ts_base + index * FRAME_SAMPLES
        if tx.dtmf:
            self._push_dtmf(timestamp)
        else:  # the audio packet, inline: this runs for every leg every 20 ms
            lin2law = self._lin2law
            payload = lin2law(pcm, 2)
            seq = tx.seq
            tx.seq = seq + 1 if seq != 0xFFFF else 0
            size = len(payload)
            if size == FRAME_SAMPLES:  # 20 ms of G.711: header and payload in one call
                packet = _pack_g711_packet(
                    0x80, self._payload_type, seq, timestamp & 0xFFFFFFFF, tx.ssrc, payload
                )
            else:
                packet = (
                    _pack_header(0x80, self._payload_type, seq, timestamp & 0xFFFFFFFF, tx.ssrc)
                    + payload
                )
            try:
                self._sock.sendto(packet, self._remote)  # type: ignore[arg-type]
                tx.packets += 1
                tx.octets += size
            except OSError as exc:
                self._send_failed(exc)
        if index >= self._rtcp_due:
            self._rtcp_tick(index, timestamp)

    def tick(self, index: int, now: float) -> None:
        """Driven alone (in no conference): receive, and send prompts or silence."""
        self.pull()
        self.push(g711.SILENCE_FRAME, index)

    def tick_failed(self, error: Exception) -> None:
        self.error = error

    def _push_dtmf(self, timestamp: int) -> None:
        sender, fut = self._tx.dtmf[0]
        if not sender.started:
            sender.timestamp = timestamp  # every packet of the event carries its start time
        marker, payload = sender.next_packet()
        assert self._dtmf_pt is not None
        self._sendto(self._dtmf_pt, marker, sender.timestamp, payload)
        if sender.done:
            self._tx.dtmf.pop(0)
            if not fut.done():
                fut.set_result(None)

    def _sendto(self, pt: int, marker: bool, timestamp: int, payload: bytes) -> None:
        tx = self._tx
        remote = self._remote
        assert remote is not None
        header = HEADER.pack(
            0x80, (0x80 if marker else 0) | pt, tx.seq, timestamp & 0xFFFFFFFF, tx.ssrc
        )
        tx.seq = (tx.seq + 1) & 0xFFFF
        try:
            self._sock.sendto(header + payload, remote)
        except OSError as exc:
            self._send_failed(exc)
            return
        tx.packets += 1
        tx.octets += len(payload)

    def _send_failed(self, exc: OSError) -> None:
        """A full socket buffer or an unreachable peer: count it and go on (logged once)."""
        self._tx.errors += 1
        if self._tx.errors == 1:
            log.warning("leg %s: RTP send failed: %s", self.label, exc)

    def _rtcp_tick(self, index: int, timestamp: int) -> None:
        """A report every RTCP_INTERVAL_TICKS, at the ticks where `index + phase` is a multiple
        of it; `_rtcp_due` is the next such index after this one (tick indexes only grow), so
        the ticks in between cost one comparison."""
        phase = self._rtcp_phase
        if (index + phase) % RTCP_INTERVAL_TICKS == 0:
            self._send_rtcp(timestamp)
        self._rtcp_due = index + 1 + (-(index + 1 + phase)) % RTCP_INTERVAL_TICKS

    def _send_rtcp(self, timestamp: int) -> None:
        if self._remote_rtcp is not None:
            tx = self._tx
            self._rtcp.send_report(
                self._remote_rtcp,
                tx.ssrc,
                timestamp,
                tx.packets,
                tx.octets,
                self._rx,
                self._rx_ssrc,
            )
