"""RFC 4733 events in and out, the shipped SIPp captures, and merging DTMF paths."""

from __future__ import annotations

from pathlib import Path

import pytest

from telephony.media.dtmf import (
    DigitMerger,
    EventReceiver,
    EventSender,
    TelephoneEvent,
    event_code,
)
from telephony.media.errors import PacketError
from telephony.media.rtp import RtpPacket
from telephony.types import DtmfDigit
from tests.media.pcap import udp_payloads

CAPTURES = {
    **{str(d): f"dtmf_2833_{d}.pcap" for d in range(10)},
    "#": "dtmf_2833_pound.pcap",
    "*": "dtmf_2833_star.pcap",
}


def test_event_payload_byte_exact() -> None:
    ev = TelephoneEvent.parse(bytes.fromhex("018a08c0"))
    assert ev == TelephoneEvent(event=1, end=True, volume=10, duration=2240)
    assert bytes(ev) == bytes.fromhex("018a08c0")
    with pytest.raises(PacketError, match="truncated"):
        TelephoneEvent.parse(b"\x01\x8a")


@pytest.mark.parametrize(("digit", "capture"), sorted(CAPTURES.items()))
def test_each_shipped_sipp_capture_gives_its_digit_exactly_once(digit: str, capture: str) -> None:
    rx = EventReceiver()
    got: list[DtmfDigit] = []
    captured = udp_payloads(Path("/usr/share/sip-tester") / capture)
    for t, data in captured:
        pkt = RtpPacket.parse(data)
        got += rx.feed(pkt.timestamp, TelephoneEvent.parse(pkt.payload), 100.0 + t - captured[0][0])
    got += rx.poll(200.0)
    assert [d.digit for d in got] == [digit]
    assert got[0].source == "rfc4733"
    assert got[0].at == pytest.approx(100.0, abs=0.001)


def _packets(digit: str, ts: int, ms: int = 100) -> list[tuple[int, TelephoneEvent]]:
    sender = EventSender(digit, ts, ms)
    out = []
    while not sender.done:
        _, payload = sender.next_packet()
        out.append((ts, TelephoneEvent.parse(payload)))
    return out


def test_sender_marks_first_grows_duration_and_sends_end_three_times() -> None:
    sender = EventSender("#", 4000, duration_ms=100)
    packets = []
    while not sender.done:
        packets.append(sender.next_packet())
    markers = [m for m, _ in packets]
    events = [TelephoneEvent.parse(p) for _, p in packets]
    assert markers == [True] + [False] * 6
    assert [e.duration for e in events] == [160, 320, 480, 640, 800, 800, 800]
    assert [e.end for e in events] == [False] * 4 + [True] * 3
    assert {e.event for e in events} == {event_code("#")} == {11}


def test_two_presses_of_the_same_key_are_two_digits() -> None:
    rx = EventReceiver()
    got = []
    t = 0.0
    for ts in (1000, 3000):
        for stamp, ev in _packets("5", ts):
            got += rx.feed(stamp, ev, t)
            t += 0.02
    assert [d.digit for d in got] == ["5", "5"]


def test_lost_end_packets_are_reported_after_a_pause_and_stragglers_ignored() -> None:
    rx = EventReceiver()
    packets = _packets("7", 9000)
    got = []
    for i, (stamp, ev) in enumerate(packets[:3]):
        got += rx.feed(stamp, ev, i * 0.02)
    assert got == [] and rx.poll(0.1) == []
    got += rx.poll(0.5)
    assert [d.digit for d in got] == ["7"]
    for stamp, ev in packets[3:]:  # the end packets turn up after all
        assert rx.feed(stamp, ev, 0.6) == []


def test_event_interrupted_by_the_next_one_still_counts() -> None:
    rx = EventReceiver()
    got = []
    for stamp, ev in _packets("1", 100)[:2] + _packets("2", 900):
        got += rx.feed(stamp, ev, 0.0)
    assert [d.digit for d in got] == ["1", "2"]


def test_non_dtmf_events_are_not_digits() -> None:
    rx = EventReceiver()
    assert rx.feed(5, TelephoneEvent(16, True, 10, 800), 0.0) == []  # flash


def test_merger_counts_a_key_press_seen_on_two_paths_once() -> None:
    m = DigitMerger()
    assert m.accept(DtmfDigit("1", "rfc4733", 10.00))
    assert not m.accept(DtmfDigit("1", "inband", 10.02))
    assert not m.accept(DtmfDigit("1", "info", 10.10))
    assert m.accept(DtmfDigit("1", "rfc4733", 10.25))  # a second press on the same path
    assert not m.accept(DtmfDigit("1", "inband", 10.27))  # its in-band echo
    assert m.accept(DtmfDigit("2", "inband", 10.30))
    assert m.accept(DtmfDigit("1", "info", 11.5))  # outside the window: a new press
    assert m.duplicates == 3
