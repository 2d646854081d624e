"""RTP packets (RFC 3550 section 5.1) as values, and per-source reception statistics (appendix A).

`RtpPacket.parse` checks every length before slicing; a datagram that is not RTP raises
`PacketError` naming what is wrong. `ReceptionStats` extends 16-bit sequence numbers across
wraps (A.1), estimates interarrival jitter (A.8) and counts loss the way RTCP reports it (6.4.1).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from math import floor

from telephony.media.errors import PacketError

RTP_VERSION = 2
HEADER = struct.Struct("!BBHII")
HEADER_SIZE = HEADER.size  # 12
SEQ_MOD = 1 << 16
TS_MOD = 1 << 32
MAX_DROPOUT = 3000  # RFC 3550 A.1
MAX_MISORDER = 100


@dataclass(slots=True)
class RtpPacket:
    """One RTP packet. `payload` excludes padding; `padding` is the number of padding octets."""

    payload_type: int
    sequence_number: int
    timestamp: int
    ssrc: int
    payload: bytes = b""
    marker: bool = False
    csrc: tuple[int, ...] = ()
    extension_profile: int | None = None
    extension: bytes = b""
    padding: int = 0

    @classmethod
    def parse(cls, data: bytes) -> RtpPacket:
        """Parse one datagram (RFC 3550 5.1, 5.3.1); raise PacketError if it is not RTP."""
        if len(data) < HEADER_SIZE:
            raise PacketError(f"RTP header truncated: {len(data)} < {HEADER_SIZE} bytes")
        first, second, seq, ts, ssrc = HEADER.unpack_from(data)
        if first >> 6 != RTP_VERSION:
            raise PacketError(f"RTP version {first >> 6} is not 2")
        if 200 <= second <= 204:  # RTCP SR/RR/SDES/BYE/APP on the RTP port (RFC 5761 4)
            raise PacketError(f"RTCP packet type {second} on the RTP port")
        pos = HEADER_SIZE
        cc = first & 0x0F
        if len(data) < pos + 4 * cc:
            raise PacketError(f"RTP CSRC list truncated: {cc} entries announced")
        csrc = struct.unpack_from(f"!{cc}I", data, pos) if cc else ()
        pos += 4 * cc
        ext_profile: int | None = None
        ext = b""
        if first & 0x10:
            if len(data) < pos + 4:
                raise PacketError("RTP header extension truncated")
            ext_profile, ext_words = struct.unpack_from("!HH", data, pos)
            pos += 4
            if len(data) < pos + 4 * ext_words:
                raise PacketError(f"RTP header extension truncated: {ext_words} words announced")
            ext = data[pos : pos + 4 * ext_words]
            pos += 4 * ext_words
        end = len(data)
        padding = 0
        if first & 0x20:
            padding = data[-1]
            if padding == 0 or end - padding < pos:
                raise PacketError(f"RTP padding length {padding} invalid")
            end -= padding
        return cls(
            payload_type=second & 0x7F,
            sequence_number=seq,
            timestamp=ts,
            ssrc=ssrc,
            payload=bytes(data[pos:end]),
            marker=bool(second & 0x80),
            csrc=tuple(csrc),
            extension_profile=ext_profile,
            extension=bytes(ext),
            padding=padding,
        )

    def __bytes__(self) -> bytes:
        if not 0 <= self.payload_type <= 127:
            raise PacketError(f"payload type {self.payload_type} out of 0..127")
        if len(self.csrc) > 15:
            raise PacketError(f"{len(self.csrc)} CSRCs, at most 15")
        if len(self.extension) % 4:
            raise PacketError("RTP header extension must be a multiple of 4 bytes")
        first = RTP_VERSION << 6 | len(self.csrc)
        if self.padding:
            first |= 0x20
        if self.extension_profile is not None:
            first |= 0x10
        out = bytearray(
            HEADER.pack(
                first,
                (0x80 if self.marker else 0) | self.payload_type,
                self.sequence_number % SEQ_MOD,
                self.timestamp % TS_MOD,
                self.ssrc,
            )
        )
        for c in self.csrc:
            out += struct.pack("!I", c)
        if self.extension_profile is not None:
            out += struct.pack("!HH", self.extension_profile, len(self.extension) // 4)
            out += self.extension
        out += self.payload
        if self.padding:
            out += bytes(self.padding - 1) + bytes([self.padding])
        return bytes(out)


def pack_header(payload_type: int, seq: int, timestamp: int, ssrc: int, marker: bool) -> bytes:
    """The fixed 12-byte header of an outgoing packet with no CSRC, extension or padding."""
    return HEADER.pack(
        0x80, (0x80 if marker else 0) | payload_type, seq % SEQ_MOD, timestamp % TS_MOD, ssrc
    )


class ReceptionStats:
    """Sequence, loss and jitter bookkeeping for one synchronisation source (RFC 3550 A.1, A.8).

    `update` returns the extended (wrap-free) sequence number of the packet, or None for a
    packet that jumps too far to be trusted (a restart is accepted when the next one follows).
    Times are in seconds; `clock_rate` converts them to RTP timestamp units.
    """

    __slots__ = (
        "_expected_prior",
        "_jitter",
        "_last_transit",
        "_received_prior",
        "_started",
        "bad_seq",
        "base_seq",
        "clock_rate",
        "cycles",
        "duplicates_or_reordered",
        "max_seq",
        "received",
    )

    def __init__(self, clock_rate: int = 8000) -> None:
        self.clock_rate = clock_rate
        self._started = False
        self.base_seq = 0
        self.max_seq = 0
        self.cycles = 0
        self.bad_seq = SEQ_MOD + 1
        self.received = 0
        self.duplicates_or_reordered = 0
        self._jitter = 0.0  # timestamp units
        self._last_transit: int | None = None
        self._expected_prior = 0
        self._received_prior = 0

    def _init_seq(self, seq: int) -> None:
        self.base_seq = seq
        self.max_seq = seq
        self.cycles = 0
        self.bad_seq = SEQ_MOD + 1
        self.received = 0
        self._expected_prior = 0
        self._received_prior = 0
        self._last_transit = None

    def update(self, seq: int, timestamp: int | None = None, arrival: float = 0.0) -> int | None:
        """Count one packet; `timestamp=None` skips the jitter estimate (e.g. DTMF events).

        This runs for every packet, so the usual case comes first and avoids the modulo
        arithmetic of A.1 and A.8 where it cannot change the result: a packet a little ahead
        of the highest sequence number so far, without a wrap (anything else, including the
        first packet, is `_update_unusual`), and a transit-time difference within ±2^31
        (else it is taken modulo 2^32 and centred, as in A.8). `_last_transit` is kept
        unreduced: differences modulo 2^32 are the same. The arrival time in timestamp units
        is `floor`ed, which is `int()` for the loop's clock (never negative) at a fraction of
        the cost of a type call.
        """
        delta = seq - self.max_seq
        if 0 <= delta < MAX_DROPOUT and self._started:
            self.max_seq = seq
            ext = self.cycles + seq
        else:
            unusual = self._update_unusual(seq)
            if unusual is None:
                return None
            ext = unusual
        self.received += 1
        if timestamp is not None:  # A.8, inline
            transit = floor(arrival * self.clock_rate) - timestamp
            last = self._last_transit
            self._last_transit = transit
            if last is not None:
                d = abs(transit - last)
                if d >= 0x80000000:  # timestamps wrapped: the difference modulo 2^32, centred
                    d = abs(((transit - last + 0x80000000) & 0xFFFFFFFF) - 0x80000000)
                jitter = self._jitter
                self._jitter = jitter + (d - jitter) / 16.0
        return ext

    def _update_unusual(self, seq: int) -> int | None:
        """The first packet, a wrap, a big jump (a restart once confirmed), or a late or
        duplicate packet (A.1)."""
        if not self._started:
            self._started = True
            self._init_seq(seq)
            return seq
        udelta = (seq - self.max_seq) % SEQ_MOD
        if udelta < MAX_DROPOUT:  # in order, with a gap: here the sequence number wrapped
            if seq < self.max_seq:
                self.cycles += SEQ_MOD
            self.max_seq = seq
            return self.cycles + seq
        if udelta <= SEQ_MOD - MAX_MISORDER:
            if seq != self.bad_seq:
                self.bad_seq = (seq + 1) % SEQ_MOD
                return None
            self._init_seq(seq)  # two sequential packets: the source restarted
            return seq
        self.duplicates_or_reordered += 1
        return self.cycles + seq if seq <= self.max_seq else self.cycles - SEQ_MOD + seq

    @property
    def extended_max_seq(self) -> int:
        return self.cycles + self.max_seq

    @property
    def expected(self) -> int:
        return 0 if self.received == 0 else self.extended_max_seq - self.base_seq + 1

    @property
    def lost(self) -> int:
        """Cumulative packets lost (RFC 3550 A.3); never negative here."""
        return max(0, self.expected - self.received)

    @property
    def jitter(self) -> int:
        """Interarrival jitter in timestamp units, as carried in a report block."""
        return int(self._jitter)

    @property
    def jitter_ms(self) -> float:
        return self._jitter * 1000.0 / self.clock_rate

    def fraction_lost(self) -> int:
        """Fraction lost since the previous call, as the 8-bit fixed point of RFC 3550 A.3."""
        expected = self.expected
        interval_expected = expected - self._expected_prior
        interval_received = self.received - self._received_prior
        self._expected_prior = expected
        self._received_prior = self.received
        lost = interval_expected - interval_received
        if interval_expected <= 0 or lost <= 0:
            return 0
        return min(255, (lost << 8) // interval_expected)
