"""Mixing of 16-bit linear frames: sums saturate instead of wrapping (no 8-bit path anywhere)."""

from __future__ import annotations

from collections.abc import Sequence

from telephony.media.g711 import SAMPLE_WIDTH, SILENCE_FRAME, audioop


def mix(frames: Sequence[bytes], silence: bytes = SILENCE_FRAME) -> bytes:
    """Sum equally long s16le frames with saturation; no frames gives `silence`."""
    if not frames:
        return silence
    out = frames[0]
    for frame in frames[1:]:
        out = audioop.add(out, frame, SAMPLE_WIDTH)
    return out


def mix_minus(frames: Sequence[bytes], silence: bytes = SILENCE_FRAME) -> list[bytes]:
    """N-1 mixing: for each input i, the sum of every other input (each hears all others, never
    itself). Built from saturating pairwise sums, so a loud party never wraps around."""
    n = len(frames)
    if n == 0:
        return []
    if n == 1:
        return [silence]
    if n == 2:
        return [frames[1], frames[0]]
    if n <= 4:  # direct sums: fewer adds than prefix/suffix for the usual three-way call
        return [mix([f for j, f in enumerate(frames) if j != i]) for i in range(n)]
    # prefix[i] = sum of frames[:i], suffix[i] = sum of frames[i:]: O(N) adds instead of O(N^2)
    prefix: list[bytes | None] = [None] * (n + 1)
    suffix: list[bytes | None] = [None] * (n + 1)
    for i in range(n):
        p = prefix[i]
        prefix[i + 1] = frames[i] if p is None else audioop.add(p, frames[i], SAMPLE_WIDTH)
    for i in range(n - 1, -1, -1):
        s = suffix[i + 1]
        suffix[i] = frames[i] if s is None else audioop.add(s, frames[i], SAMPLE_WIDTH)
    out: list[bytes] = []
    for i in range(n):
        left, right = prefix[i], suffix[i + 1]
        if left is None:
            assert right is not None
            out.append(right)
        elif right is None:
            out.append(left)
        else:
            out.append(audioop.add(left, right, SAMPLE_WIDTH))
    return out


def scale(frame: bytes, gain: float) -> bytes:
    """Multiply a frame by `gain` with saturation."""
    return audioop.mul(frame, SAMPLE_WIDTH, gain)
