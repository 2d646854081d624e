"""DTMF as RTP events (RFC 4733) in and out, and the merge of every DTMF path into one stream.

- `TelephoneEvent`: the 4-octet event payload (RFC 4733 2.3) as a value.
- `EventReceiver`: turns event packets into key presses: one per event (identified by its RTP
  timestamp, 2.5.2.1), reported at the first end packet; the end packet's retransmissions
  (2.5.1.4) are ignored, and an event whose end packets were all lost is reported after a pause.
- `EventSender`: the packets for one key press: marker on the first, the duration growing every
  20 ms, the end packet sent three times (2.5.1.2-2.5.1.4).
- `DigitMerger`: RFC 4733, SIP INFO and in-band digits for one leg into one stream: a key press
  seen on two paths (same digit, different source, onsets within a window) is delivered once.
All of it is sans-IO: times are passed in (monotonic seconds).
"""

from __future__ import annotations

import struct
from collections import deque
from dataclasses import dataclass, field

from telephony.media.errors import PacketError
from telephony.types import DTMF_DIGITS, DtmfDigit

EVENT_PAYLOAD = struct.Struct("!BBH")
CLOCK_RATE = 8000
END_RETRANSMISSIONS = 3  # RFC 4733 2.5.1.4: the final packet is sent three times
DEFAULT_VOLUME = 10  # -10 dBm0
EVENT_TIMEOUT = 0.25  # an event with no packet for this long has ended (its end was lost)
DEDUPE_WINDOW = 0.5  # seconds between onsets of one key press seen on two paths


def event_code(digit: str) -> int:
    """RFC 4733 3.2 event code of a DTMF digit (0-9, * = 10, # = 11, A-D = 12-15)."""
    code = DTMF_DIGITS.find(digit)
    if len(digit) != 1 or code < 0:
        raise ValueError(f"not a DTMF digit: {digit!r}")
    return code


def event_digit(code: int) -> str | None:
    """The digit for an event code, or None for a non-DTMF event (flash, tones)."""
    return DTMF_DIGITS[code] if 0 <= code < len(DTMF_DIGITS) else None


@dataclass(frozen=True, slots=True)
class TelephoneEvent:
    """The telephone-event payload (RFC 4733 2.3)."""

    event: int
    end: bool
    volume: int
    duration: int  # timestamp units

    @classmethod
    def parse(cls, payload: bytes) -> TelephoneEvent:
        if len(payload) < EVENT_PAYLOAD.size:
            raise PacketError(f"telephone-event payload truncated: {len(payload)} < 4 bytes")
        event, flags, duration = EVENT_PAYLOAD.unpack_from(payload)
        return cls(event, bool(flags & 0x80), flags & 0x3F, duration)

    def __bytes__(self) -> bytes:
        if not 0 <= self.event <= 255 or not 0 <= self.volume <= 63:
            raise PacketError(f"telephone-event out of range: {self}")
        flags = (0x80 if self.end else 0) | self.volume
        return EVENT_PAYLOAD.pack(self.event, flags, min(self.duration, 0xFFFF))


@dataclass(slots=True)
class _Event:
    timestamp: int
    digit: str | None
    onset: float
    last_seen: float
    duration: int = 0


class EventReceiver:
    """Key presses from a stream of RFC 4733 event packets, each exactly once."""

    def __init__(self) -> None:
        self._current: _Event | None = None
        self._done: deque[int] = deque(maxlen=16)  # timestamps of events already reported
        self.pending = False  # an event is under way: poll() may have to end it (read per tick)

    def feed(self, timestamp: int, event: TelephoneEvent, now: float) -> list[DtmfDigit]:
        """One event packet arrived at `now`; returns the key presses it completes."""
        out: list[DtmfDigit] = []
        if timestamp in self._done:
            return out  # a retransmitted end packet, or a straggler of a finished event
        cur = self._current
        if cur is None or cur.timestamp != timestamp:
            if cur is not None:
                out.extend(self._finish())  # the previous event lost its end packets
            onset = now - event.duration / CLOCK_RATE if event.duration else now
            cur = self._current = _Event(timestamp, event_digit(event.event), onset, now)
            self.pending = True
        cur.last_seen = now
        cur.duration = max(cur.duration, event.duration)
        if event.end:
            out.extend(self._finish())
        return out

    def poll(self, now: float) -> list[DtmfDigit]:
        """Report an event whose packets stopped without an end packet."""
        cur = self._current
        if cur is not None and now - cur.last_seen >= EVENT_TIMEOUT:
            return self._finish()
        return []

    def _finish(self) -> list[DtmfDigit]:
        cur = self._current
        assert cur is not None
        self._current = None
        self.pending = False
        self._done.append(cur.timestamp)
        if cur.digit is None:
            return []
        ms = cur.duration * 1000 // CLOCK_RATE
        return [DtmfDigit(cur.digit, "rfc4733", cur.onset, ms)]


@dataclass(slots=True)
class EventSender:
    """The event packets of one key press, one call of `next_packet` per 20 ms tick."""

    digit: str
    timestamp: int  # RTP timestamp of the event's start, the same in every packet
    duration_ms: int = 160
    volume: int = DEFAULT_VOLUME
    _sent: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        event_code(self.digit)
        if self.duration_ms < 20:
            raise ValueError(f"DTMF duration {self.duration_ms} ms is below one packet")

    @property
    def _updates(self) -> int:
        return max(1, round(self.duration_ms / 20))

    @property
    def started(self) -> bool:
        return self._sent > 0

    @property
    def done(self) -> bool:
        return self._sent >= self._updates + END_RETRANSMISSIONS - 1

    def next_packet(self) -> tuple[bool, bytes]:
        """(marker, payload) of the next packet; the marker is set on the first only."""
        if self.done:
            raise RuntimeError("event already ended")
        self._sent += 1
        step = min(self._sent, self._updates)
        end = self._sent >= self._updates
        payload = TelephoneEvent(event_code(self.digit), end, self.volume, step * 160)
        return self._sent == 1, bytes(payload)


@dataclass(slots=True)
class _Delivered:
    digit: DtmfDigit
    matched: set[str] = field(default_factory=set)


class DigitMerger:
    """Deduplicate key presses arriving on several paths (RFC 4733, SIP INFO, in-band).

    A digit from source S is a duplicate when the same digit was delivered from another
    source within `window` seconds of its onset and that delivery has not yet been matched by
    S. Repeated presses on one path are always distinct.
    """

    def __init__(self, window: float = DEDUPE_WINDOW) -> None:
        self.window = window
        self._recent: deque[_Delivered] = deque()
        self.duplicates = 0

    def accept(self, digit: DtmfDigit) -> bool:
        """True if `digit` is a new key press to deliver; False for a duplicate."""
        while self._recent and digit.at - self._recent[0].digit.at > 4 * self.window:
            self._recent.popleft()
        best: _Delivered | None = None
        for entry in self._recent:
            d = entry.digit
            if (
                d.digit == digit.digit
                and d.source != digit.source
                and digit.source not in entry.matched
                and abs(d.at - digit.at) <= self.window
                and (best is None or abs(d.at - digit.at) < abs(best.digit.at - digit.at))
            ):
                best = entry
        if best is not None:
            best.matched.add(digit.source)
            self.duplicates += 1
            return False
        self._recent.append(_Delivered(digit))
        return True
