"""RTCP sender and receiver reports (RFC 3550 section 6.4) and SDES CNAME (6.5), as values.

`parse_compound` splits a compound datagram and checks every length; packet types other
than SR, RR and SDES are returned as `RtcpOther` so a report we do not use never fails a leg.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from telephony.media.errors import PacketError

RTCP_SR = 200
RTCP_RR = 201
RTCP_SDES = 202
RTCP_BYE = 203
SDES_CNAME = 1
NTP_EPOCH_OFFSET = 2208988800  # seconds from 1900-01-01 to 1970-01-01
_REPORT_BLOCK = struct.Struct("!IB3sIIII")


@dataclass(frozen=True, slots=True)
class ReportBlock:
    """Reception report about one source (RFC 3550 6.4.1)."""

    ssrc: int
    fraction_lost: int  # 8-bit fixed point: lost/expected * 256
    packets_lost: int  # cumulative, 24-bit signed
    highest_sequence: int  # extended
    jitter: int  # timestamp units
    last_sr: int = 0  # middle 32 bits of the NTP timestamp of the last SR received
    delay_since_last_sr: int = 0  # 1/65536 s

    @classmethod
    def parse(cls, data: bytes, pos: int) -> ReportBlock:
        if len(data) < pos + _REPORT_BLOCK.size:
            raise PacketError("RTCP report block truncated")
        ssrc, fraction, lost24, highest, jitter, lsr, dlsr = _REPORT_BLOCK.unpack_from(data, pos)
        lost = int.from_bytes(lost24, "big", signed=True)
        return cls(ssrc, fraction, lost, highest, jitter, lsr, dlsr)

    def __bytes__(self) -> bytes:
        lost = max(-(1 << 23), min((1 << 23) - 1, self.packets_lost))
        return _REPORT_BLOCK.pack(
            self.ssrc,
            self.fraction_lost & 0xFF,
            lost.to_bytes(3, "big", signed=True),
            self.highest_sequence & 0xFFFFFFFF,
            self.jitter & 0xFFFFFFFF,
            self.last_sr,
            self.delay_since_last_sr,
        )

    @property
    def loss_ratio(self) -> float:
        return self.fraction_lost / 256.0


def _header(count: int, packet_type: int, body_len: int) -> bytes:
    if body_len % 4:
        raise PacketError("RTCP packet body must be a multiple of 4 bytes")
    return struct.pack("!BBH", 0x80 | count, packet_type, body_len // 4)


@dataclass(frozen=True, slots=True)
class SenderReport:
    """SR: sender info plus reception reports (RFC 3550 6.4.1)."""

    ssrc: int
    ntp_timestamp: int  # 64-bit NTP format
    rtp_timestamp: int
    packet_count: int
    octet_count: int
    reports: tuple[ReportBlock, ...] = ()

    def __bytes__(self) -> bytes:
        body = struct.pack(
            "!IQIII",
            self.ssrc,
            self.ntp_timestamp,
            self.rtp_timestamp & 0xFFFFFFFF,
            self.packet_count & 0xFFFFFFFF,
            self.octet_count & 0xFFFFFFFF,
        )
        body += b"".join(bytes(r) for r in self.reports)
        return _header(len(self.reports), RTCP_SR, len(body)) + body


@dataclass(frozen=True, slots=True)
class ReceiverReport:
    """RR: reception reports from a participant that did not send (RFC 3550 6.4.2)."""

    ssrc: int
    reports: tuple[ReportBlock, ...] = ()

    def __bytes__(self) -> bytes:
        body = struct.pack("!I", self.ssrc) + b"".join(bytes(r) for r in self.reports)
        return _header(len(self.reports), RTCP_RR, len(body)) + body


@dataclass(frozen=True, slots=True)
class SourceDescription:
    """SDES with one CNAME chunk per source (RFC 3550 6.5.1)."""

    cnames: tuple[tuple[int, str], ...] = field(default_factory=tuple)

    def __bytes__(self) -> bytes:
        body = b""
        for ssrc, cname in self.cnames:
            text = cname.encode()[:255]
            chunk = struct.pack("!IBB", ssrc, SDES_CNAME, len(text)) + text + b"\x00"
            body += chunk + bytes(-len(chunk) % 4)
        return _header(len(self.cnames), RTCP_SDES, len(body)) + body


@dataclass(frozen=True, slots=True)
class RtcpOther:
    """A packet type we do not interpret (BYE, APP, feedback, ...)."""

    packet_type: int
    body: bytes


RtcpPacket = SenderReport | ReceiverReport | SourceDescription | RtcpOther


def _reports(data: bytes, pos: int, count: int, end: int) -> tuple[ReportBlock, ...]:
    if pos + count * _REPORT_BLOCK.size > end:
        raise PacketError(f"RTCP announces {count} report blocks that do not fit")
    return tuple(ReportBlock.parse(data, pos + i * _REPORT_BLOCK.size) for i in range(count))


def _parse_sdes(data: bytes, pos: int, count: int, end: int) -> SourceDescription:
    cnames: list[tuple[int, str]] = []
    for _ in range(count):
        if pos + 4 > end:
            raise PacketError("RTCP SDES chunk truncated")
        (ssrc,) = struct.unpack_from("!I", data, pos)
        pos += 4
        while pos < end and data[pos] != 0:
            if pos + 2 > end or pos + 2 + data[pos + 1] > end:
                raise PacketError("RTCP SDES item truncated")
            kind, length = data[pos], data[pos + 1]
            if kind == SDES_CNAME:
                cnames.append((ssrc, data[pos + 2 : pos + 2 + length].decode("utf-8", "replace")))
            pos += 2 + length
        pos = (pos + 4) & ~3  # the terminating null octet(s) up to the next 32-bit boundary
    return SourceDescription(tuple(cnames))


def parse_compound(data: bytes) -> list[RtcpPacket]:
    """Parse every packet of a compound RTCP datagram (RFC 3550 6.1)."""
    packets: list[RtcpPacket] = []
    pos = 0
    if len(data) < 4:
        raise PacketError(f"RTCP datagram truncated: {len(data)} bytes")
    while pos < len(data):
        if len(data) < pos + 4:
            raise PacketError("RTCP header truncated")
        first, ptype, words = struct.unpack_from("!BBH", data, pos)
        if first >> 6 != 2:
            raise PacketError(f"RTCP version {first >> 6} is not 2")
        end = pos + 4 + 4 * words
        if end > len(data):
            raise PacketError(f"RTCP packet type {ptype} truncated: length {words} words")
        count = first & 0x1F
        body = pos + 4
        if ptype == RTCP_SR:
            if body + 24 > end:
                raise PacketError("RTCP SR sender info truncated")
            ssrc, ntp, rtp_ts, pkts, octets = struct.unpack_from("!IQIII", data, body)
            blocks = _reports(data, body + 24, count, end)
            packets.append(SenderReport(ssrc, ntp, rtp_ts, pkts, octets, blocks))
        elif ptype == RTCP_RR:
            if body + 4 > end:
                raise PacketError("RTCP RR truncated")
            (ssrc,) = struct.unpack_from("!I", data, body)
            packets.append(ReceiverReport(ssrc, _reports(data, body + 4, count, end)))
        elif ptype == RTCP_SDES:
            packets.append(_parse_sdes(data, body, count, end))
        else:
            packets.append(RtcpOther(ptype, bytes(data[body:end])))
        pos = end
    return packets


def ntp_timestamp(unix_time: float) -> int:
    """64-bit NTP timestamp for a Unix time (RFC 3550 4)."""
    seconds = int(unix_time) + NTP_EPOCH_OFFSET
    fraction = int((unix_time % 1.0) * (1 << 32)) & 0xFFFFFFFF
    return (seconds & 0xFFFFFFFF) << 32 | fraction


def middle_32(ntp: int) -> int:
    """The middle 32 bits of an NTP timestamp, as echoed in LSR (RFC 3550 6.4.1)."""
    return (ntp >> 16) & 0xFFFFFFFF
