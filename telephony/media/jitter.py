"""A small jitter buffer with loss concealment, driven one 20 ms frame per tick (sans-IO).

Packets are pushed as they arrive, keyed by their extended sequence number; the ticker pops
exactly one frame per tick, so the output is paced by our clock and never bursts: a stall
followed by a flood of packets raises latency for a while (frames are played one per tick, and
the buffer sheds one frame at a time when it stays above its target) instead of rushing.
A missing frame is concealed by repeating the last good frame at falling gain, then silence.
"""

from __future__ import annotations

from dataclasses import dataclass

from telephony.media.g711 import SILENCE_FRAME
from telephony.media.mixer import scale

CONCEAL_GAINS = (1.0, 0.6, 0.3)  # repeat the last frame, fading; silence after that
REBUFFER_AFTER_MISSES = 5  # nothing buffered for 100 ms: the talker stopped; prefill again
RESTART_DISTANCE = 100  # a packet this far behind is a sequence restart, not a late one
TRIM_WINDOW = 25  # ticks (0.5 s) the buffer must stay above target before shedding a frame


@dataclass(slots=True)
class JitterCounters:
    """What the buffer did, for the leg statistics."""

    played: int = 0
    concealed: int = 0
    late: int = 0
    duplicates: int = 0
    overflow_dropped: int = 0
    trimmed: int = 0
    rebuffers: int = 0


class JitterBuffer:
    """Reorders up to `capacity` frames; plays after `prefill` frames are queued."""

    __slots__ = (
        "_far_ahead",
        "_frames",
        "_last",
        "_low_water",
        "_misses",
        "_next",
        "_played_up_to",
        "_ticks_in_window",
        "capacity",
        "counters",
        "prefill",
    )

    def __init__(self, prefill: int = 2, capacity: int = 10) -> None:
        if not 1 <= prefill < capacity:
            raise ValueError(f"need 1 <= prefill < capacity, got {prefill}, {capacity}")
        self.prefill = prefill
        self.capacity = capacity
        self._far_ahead = 2 * capacity  # a packet this far ahead of the next to play: resync
        self.counters = JitterCounters()
        self._frames: dict[int, bytes] = {}
        self._next: int | None = None  # next sequence to play; None while (re)buffering
        self._played_up_to: int | None = None  # one past the last sequence played (or skipped)
        self._last = SILENCE_FRAME
        self._misses = 0
        self._low_water = capacity
        self._ticks_in_window = 0

    def __len__(self) -> int:
        return len(self._frames)

    def reset(self) -> None:
        """Forget everything queued (a new source); keeps the counters."""
        self._frames.clear()
        self._next = None
        self._played_up_to = None
        self._misses = len(CONCEAL_GAINS)

    def push(self, seq: int, frame: bytes) -> bool:
        """Queue the frame with extended sequence `seq`; False if it came too late or twice."""
        frames = self._frames
        nxt = self._next
        if nxt is not None and seq >= nxt:  # the usual case: playing, and it is not late
            if seq - nxt >= self._far_ahead:
                frames.clear()  # a jump far ahead: resynchronise
                self._next = None
        else:
            behind = nxt if nxt is not None else self._played_up_to
            if behind is not None and seq < behind:
                if behind - seq < RESTART_DISTANCE:
                    self.counters.late += 1
                    return False
                self.reset()  # far behind: the sender restarted its sequence (RFC 3550 A.1)
        if seq in frames:
            self.counters.duplicates += 1
            return False
        frames[seq] = frame
        if len(frames) > self.capacity:
            self._overflow()
        return True

    def _overflow(self) -> None:
        frames = self._frames
        while len(frames) > self.capacity:
            oldest = min(frames)
            del frames[oldest]
            self.counters.overflow_dropped += 1
            if self._next is not None and oldest >= self._next:
                self._next = oldest + 1

    def pop(self) -> bytes:
        """The frame to play this tick: the next packet, a concealment frame or silence."""
        frames = self._frames
        seq = self._next
        if seq is None:
            if len(frames) < self.prefill:
                return self._conceal(counted=False)
            seq = min(frames)
            self._misses = 0
        self._next = seq + 1
        frame = frames.pop(seq, None)
        if frame is None:
            if not frames and self._misses >= REBUFFER_AFTER_MISSES:
                self._played_up_to = seq + 1
                self._next = None
                self.counters.rebuffers += 1
                return self._conceal(counted=False)
            return self._conceal(counted=True)
        self._misses = 0
        self._last = frame
        self.counters.played += 1
        if len(frames) < self._low_water:
            self._low_water = len(frames)
        ticks = self._ticks_in_window + 1
        self._ticks_in_window = ticks
        if ticks >= TRIM_WINDOW:
            self._trim()
        return frame

    def _conceal(self, counted: bool) -> bytes:
        miss = self._misses
        self._misses = miss + 1
        if counted:
            self.counters.concealed += 1
        if miss < len(CONCEAL_GAINS):
            gain = CONCEAL_GAINS[miss]
            return self._last if gain == 1.0 else scale(self._last, gain)
        return SILENCE_FRAME

    def _trim(self) -> None:
        """Shed one frame when the queue stayed above target for a whole window (drift, or
        the aftermath of a stall): latency returns to the target one frame at a time."""
        if self._low_water > self.prefill and self._next is not None:
            self._frames.pop(self._next, None)
            self._next += 1
            self.counters.trimmed += 1
        self._low_water = self.capacity
        self._ticks_in_window = 0
