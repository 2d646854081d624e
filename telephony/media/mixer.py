"""Mixing of 16-bit linear frames. Every output saturates once, at the end, so the result does
not depend on the order of the inputs and a loud party never wraps around: a sum of three or
more is taken pairwise while no partial sum reaches full scale (the usual case, exact), else
in 32 bits with headroom. No 8-bit path anywhere."""

from __future__ import annotations

from collections.abc import Sequence

from telephony.media.g711 import SAMPLE_WIDTH, SILENCE_FRAME, audioop

_WIDE = 4
_HEADROOM = 16.0  # 32-bit samples hold x << 12: sums of up to 16 full-scale parties are exact


def _widen(frame: bytes) -> bytes:
    return audioop.mul(audioop.lin2lin(frame, SAMPLE_WIDTH, _WIDE), _WIDE, 1.0 / _HEADROOM)


def _narrow(wide: bytes) -> bytes:
    return audioop.lin2lin(audioop.mul(wide, _WIDE, _HEADROOM), _WIDE, SAMPLE_WIDTH)


def mix(frames: Sequence[bytes], silence: bytes = SILENCE_FRAME) -> bytes:
    """Sum equally long s16le frames, saturating once; no frames gives `silence`."""
    n = len(frames)
    if n == 0:
        return silence
    if n == 1:
        return frames[0]
    if n == 2:
        return audioop.add(frames[0], frames[1], SAMPLE_WIDTH)
    partial = frames[0]
    for frame in frames[1:-1]:
        partial = audioop.add(partial, frame, SAMPLE_WIDTH)
        if audioop.max(partial, SAMPLE_WIDTH) >= 32767:  # a partial sum touched the rails:
            return _mix_wide(frames)  # take the exact path
    return audioop.add(partial, frames[-1], SAMPLE_WIDTH)


def _mix_wide(frames: Sequence[bytes]) -> bytes:
    total = _widen(frames[0])
    for frame in frames[1:]:
        total = audioop.add(total, _widen(frame), _WIDE)
    return _narrow(total)


def mix_minus(frames: Sequence[bytes], silence: bytes = SILENCE_FRAME) -> list[bytes]:
    """N-1 mixing: for each input i, the sum of every other input (each hears all others, never
    itself)."""
    n = len(frames)
    if n == 0:
        return []
    if n == 1:
        return [silence]
    if n == 2:
        return [frames[1], frames[0]]
    if n == 3:  # each output is one pairwise sum: a single saturating add is exact
        a, b, c = frames
        return [
            audioop.add(b, c, SAMPLE_WIDTH),
            audioop.add(a, c, SAMPLE_WIDTH),
            audioop.add(a, b, SAMPLE_WIDTH),
        ]
    wide = [_widen(f) for f in frames]
    total = wide[0]
    for w in wide[1:]:
        total = audioop.add(total, w, _WIDE)
    return [_narrow(audioop.add(total, audioop.mul(w, _WIDE, -1.0), _WIDE)) for w in wide]


def mix_and_minus(frames: Sequence[bytes]) -> tuple[bytes, list[bytes]]:
    """`(mix(frames), mix_minus(frames))` in one go: for three parties the full mix reuses one
    of the pairwise sums (exact unless that sum reached full scale, as in `mix`)."""
    if len(frames) != 3:
        return mix(frames), mix_minus(frames)
    a, b, c = frames
    add, width = audioop.add, SAMPLE_WIDTH  # locals: this runs for every call every tick
    ab = add(a, b, width)
    minus = [add(b, c, width), add(a, c, width), ab]
    if audioop.max(ab, width) >= 32767:  # the partial sum touched the rails
        return _mix_wide(frames), minus
    return add(ab, c, width), minus


def scale(frame: bytes, gain: float) -> bytes:
    """Multiply a frame by `gain` with saturation."""
    return audioop.mul(frame, SAMPLE_WIDTH, gain)
