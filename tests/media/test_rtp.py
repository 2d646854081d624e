"""RTP packets and reception statistics (RFC 3550), byte-exact against shipped captures."""

from __future__ import annotations

import contextlib
import itertools
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from telephony.media.errors import PacketError
from telephony.media.rtp import ReceptionStats, RtpPacket, pack_header
from tests.media.pcap import udp_payloads

SIPP = Path("/usr/share/sip-tester")
# First packet of SIPp's dtmf_2833_1.pcap: marker, PT 101, seq 7984, ts 13280, event 1 start.
DTMF_1_FIRST = bytes.fromhex("80e51f30000033e00e05384e010a0000")


def test_parses_captured_telephone_event_packet() -> None:
    pkt = RtpPacket.parse(DTMF_1_FIRST)
    assert (pkt.payload_type, pkt.sequence_number, pkt.timestamp) == (101, 7984, 13280)
    assert pkt.marker and pkt.ssrc == 0x0E05384E
    assert pkt.payload == bytes.fromhex("010a0000")
    assert bytes(pkt) == DTMF_1_FIRST


def test_parses_captured_pcma_stream() -> None:
    payloads = udp_payloads(SIPP / "g711a.pcap")
    packets = [RtpPacket.parse(p) for _, p in payloads]
    assert len(packets) > 100
    assert {p.payload_type for p in packets} == {8}
    assert all(len(p.payload) == 240 for p in packets)
    assert [bytes(p) for p in packets[:50]] == [p for _, p in payloads[:50]]
    seqs = [p.sequence_number for p in packets]
    assert all((b - a) % 65536 == 1 for a, b in itertools.pairwise(seqs))


@pytest.mark.parametrize(
    ("data", "what"),
    [
        (b"\x80\x00\x00", "header truncated"),
        (bytes.fromhex("40000001000000000000000a"), "version 1"),
        (bytes.fromhex("82000001000000000000000a00000001"), "CSRC list truncated"),
        (bytes.fromhex("90000001000000000000000a0000"), "extension truncated"),
        (bytes.fromhex("90000001000000000000000a00010002deadbeef"), "2 words announced"),
        (bytes.fromhex("a0000001000000000000000a00"), "padding length 0"),
        (bytes.fromhex("a0000001000000000000000a0009"), "padding length 9"),
        (bytes.fromhex("80c80006"), "header truncated"),
        (bytes.fromhex("80c800060000000000000000"), "RTCP packet type 200"),
    ],
)
def test_rejects_malformed_datagrams_naming_the_problem(data: bytes, what: str) -> None:
    with pytest.raises(PacketError, match=what):
        RtpPacket.parse(data)


def test_csrc_extension_and_padding_round_trip() -> None:
    pkt = RtpPacket(
        0, 65535, 2**32 - 1, 7, b"\xff" * 160, True, (1, 2), 0xBEDE, b"\x10\xaa\x00\x00", 4
    )
    data = bytes(pkt)
    assert len(data) == 12 + 8 + 4 + 4 + 160 + 4
    assert RtpPacket.parse(data) == pkt


@given(
    pt=st.integers(0, 127).filter(lambda p: not 64 <= p <= 95),  # RFC 5761 4: RTCP clash
    seq=st.integers(0, 65535),
    ts=st.integers(0, 2**32 - 1),
    ssrc=st.integers(0, 2**32 - 1),
    marker=st.booleans(),
    payload=st.binary(max_size=300),
    csrc=st.lists(st.integers(0, 2**32 - 1), max_size=15).map(tuple),
)
def test_any_packet_round_trips(
    pt: int, seq: int, ts: int, ssrc: int, marker: bool, payload: bytes, csrc: tuple[int, ...]
) -> None:
    pkt = RtpPacket(pt, seq, ts, ssrc, payload, marker, csrc)
    assert RtpPacket.parse(bytes(pkt)) == pkt
    if not csrc:
        assert bytes(pkt) == pack_header(pt, seq, ts, ssrc, marker) + payload


@given(st.binary(max_size=64))
def test_garbage_raises_packet_error_or_parses(data: bytes) -> None:
    with contextlib.suppress(PacketError):
        RtpPacket.parse(data)


def test_sequence_wrap_is_extended_and_not_counted_as_loss() -> None:
    rx = ReceptionStats()
    exts = [rx.update(s, s * 160, s * 0.02) for s in (65533, 65534, 65535, 0, 1, 2)]
    assert exts == [65533, 65534, 65535, 65536, 65537, 65538]
    assert rx.lost == 0 and rx.expected == 6


def test_loss_reorder_and_duplicates() -> None:
    rx = ReceptionStats()
    for s in (10, 11, 13, 12, 12, 16):
        rx.update(s)
    assert rx.expected == 7
    assert rx.lost == 1  # 14 and 15 missing, the duplicate 12 offsets one (RFC 3550 A.3)
    assert rx.duplicates_or_reordered == 2


def test_reordered_packet_across_the_wrap_gets_the_older_cycle() -> None:
    rx = ReceptionStats()
    assert rx.update(65534) == 65534
    assert rx.update(0) == 65536
    assert rx.update(65535) == 65535


def test_a_big_jump_is_accepted_only_when_the_next_packet_follows_it() -> None:
    rx = ReceptionStats()
    rx.update(100)
    assert rx.update(40000) is None
    assert rx.update(40001) == 40001
    assert rx.lost == 0


def test_jitter_is_zero_for_steady_packets_and_follows_rfc_3550_for_variation() -> None:
    steady = ReceptionStats()
    for i in range(50):
        steady.update(i, i * 160, 100.0 + i * 0.02)
    assert steady.jitter_ms == pytest.approx(0.0, abs=0.13)
    shaky = ReceptionStats()
    for i in range(400):
        shaky.update(i, i * 160, 100.0 + i * 0.02 + (0.004 if i % 2 else 0.0))
    assert shaky.jitter_ms == pytest.approx(4.0, rel=0.05)  # |D| = 4 ms every packet


def test_timestamp_wrap_does_not_spike_jitter() -> None:
    rx = ReceptionStats()
    base = 2**32 - 800
    for i in range(20):
        rx.update(i, (base + i * 160) % 2**32, 5.0 + i * 0.02)
    assert rx.jitter_ms < 0.2


def test_fraction_lost_per_interval() -> None:
    rx = ReceptionStats()
    for s in range(0, 100, 2):
        rx.update(s)
    assert rx.fraction_lost() == 126  # 49 of 99 lost: floor(49 * 256 / 99)
    for s in range(99, 200):
        rx.update(s)
    assert rx.fraction_lost() == 0


class _Rfc3550Source:
    """RFC 3550 A.1 (update_seq, without probation) and A.8 (jitter), written as the RFC's C:
    the reference `ReceptionStats`, whose hot path takes shortcuts, must agree with."""

    def __init__(self, seq: int) -> None:
        self.late = 0
        self.jitter = 0.0
        self.init_seq(seq)

    def init_seq(self, seq: int) -> None:
        self.base_seq = self.max_seq = seq
        self.bad_seq = 65536 + 1
        self.cycles = self.received = 0
        self.transit: int | None = None  # a restarted source: its transit starts afresh

    def update(self, seq: int, ts: int | None, arrival: float) -> int | None:
        udelta = (seq - self.max_seq) % 65536
        if udelta < 3000:
            if seq < self.max_seq:
                self.cycles += 65536
            self.max_seq = seq
            ext = self.cycles + seq
        elif udelta <= 65536 - 100:
            if seq != self.bad_seq:
                self.bad_seq = (seq + 1) % 65536
                return None
            self.init_seq(seq)
            ext = seq
        else:
            self.late += 1
            ext = self.cycles + seq if seq <= self.max_seq else self.cycles - 65536 + seq
        self.received += 1
        if ts is not None:
            transit = (int(arrival * 8000) - ts) % 2**32
            if self.transit is not None:
                d = (transit - self.transit + 2**31) % 2**32 - 2**31
                self.jitter += (abs(d) - self.jitter) / 16.0
            self.transit = transit
        return ext


_STEPS = st.one_of(
    st.just(1),  # in order: most packets
    st.integers(2, 40),  # loss
    st.integers(-30, 0),  # late, duplicate
    st.integers(2900, 3100),  # at MAX_DROPOUT
    st.integers(20000, 65535),  # a jump (accepted if the next follows), or very late
)


@given(
    start=st.integers(0, 65535),
    ts0=st.integers(0, 2**32 - 1),
    steps=st.lists(
        st.tuples(_STEPS, st.integers(-5000, 2**32), st.floats(0.0, 0.5), st.booleans()),
        max_size=60,
    ),
)
def test_reception_stats_agree_with_rfc_3550_appendix_a(
    start: int, ts0: int, steps: list[tuple[int, int, float, bool]]
) -> None:
    """Sequence wraps, jumps, restarts, late and duplicate packets, timestamp wraps and jumps of
    any size, DTMF packets without a timestamp: the same numbers as the RFC's algorithm."""
    rx, ref = ReceptionStats(), _Rfc3550Source(start)
    assert rx.update(start, ts0, 1000.0) == start
    ref.received, ref.transit = 1, (int(1000.0 * 8000) - ts0) % 2**32
    seq, ts, arrival = start, ts0, 1000.0
    for step, ts_step, wait, has_ts in steps:
        seq, ts, arrival = (seq + step) % 65536, (ts + ts_step) % 2**32, arrival + wait
        stamp = ts if has_ts else None
        assert rx.update(seq, stamp, arrival) == ref.update(seq, stamp, arrival)
        assert (rx.received, rx.extended_max_seq, rx.base_seq) == (
            ref.received,
            ref.cycles + ref.max_seq,
            ref.base_seq,
        )
        assert rx.duplicates_or_reordered == ref.late
        assert rx.jitter_ms == ref.jitter * 1000.0 / 8000  # exactly: the same float operations
