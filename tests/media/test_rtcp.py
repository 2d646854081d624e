"""RTCP SR/RR/SDES (RFC 3550 6.4, 6.5) as values."""

from __future__ import annotations

import pytest

from telephony.media.errors import PacketError
from telephony.media.rtcp import (
    ReceiverReport,
    ReportBlock,
    RtcpOther,
    SenderReport,
    SourceDescription,
    middle_32,
    ntp_timestamp,
    parse_compound,
)

BLOCK = ReportBlock(0x11223344, 64, 7, 70000, 123, 0xAABBCCDD, 65536)
# RR from SSRC 1 with that block, written out by hand from RFC 3550 6.4.2.
RR_BYTES = bytes.fromhex("81c90007000000011122334440000007000111700000007baabbccdd00010000")


def test_receiver_report_is_byte_exact() -> None:
    rr = ReceiverReport(1, (BLOCK,))
    assert bytes(rr) == RR_BYTES
    assert parse_compound(RR_BYTES) == [rr]
    assert BLOCK.loss_ratio == 0.25


def test_compound_sr_with_sdes_round_trips() -> None:
    sr = SenderReport(5, ntp_timestamp(1_700_000_000.5), 160, 10, 1600, (BLOCK,))
    sdes = SourceDescription(((5, "caller@linkcall"),))
    data = bytes(sr) + bytes(sdes)
    assert len(data) % 4 == 0
    assert parse_compound(data) == [sr, sdes]


def test_negative_cumulative_loss_survives() -> None:
    block = ReportBlock(1, 0, -3, 5, 0)
    assert parse_compound(bytes(ReceiverReport(2, (block,))))[0] == ReceiverReport(2, (block,))


def test_unknown_packet_types_are_kept_not_failed() -> None:
    bye = bytes.fromhex("81cb000100000009")
    assert parse_compound(bye) == [RtcpOther(203, bytes.fromhex("00000009"))]


@pytest.mark.parametrize(
    ("data", "what"),
    [
        (b"\x81\xc9", "truncated"),
        (RR_BYTES[:-4], "length 7 words"),
        (bytes.fromhex("41c9000100000001"), "version 1"),
        (bytes.fromhex("82c9000100000001"), "2 report blocks"),
        (bytes.fromhex("80c8000100000001"), "sender info truncated"),
        (bytes.fromhex("81ca0002000000050105"), "length 2 words"),
    ],
)
def test_truncated_or_wrong_reports_raise(data: bytes, what: str) -> None:
    with pytest.raises(PacketError, match=what):
        parse_compound(data)


def test_ntp_time_and_lsr() -> None:
    ntp = ntp_timestamp(0.5)
    assert ntp >> 32 == 2208988800
    assert ntp & 0xFFFFFFFF == 1 << 31
    assert middle_32(ntp) == ((2208988800 & 0xFFFF) << 16) | 0x8000
