"""N-1 mixing: each output is the saturated sum of every other input."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from telephony.media.g711 import SILENCE_FRAME
from telephony.media.mixer import mix, mix_and_minus, mix_minus, scale


def _np(frame: bytes) -> np.ndarray:
    return np.frombuffer(frame, dtype="<i2").astype(np.int64)


@given(
    st.integers(1, 7).flatmap(
        lambda n: st.lists(
            arrays(np.int16, 160, elements=st.integers(-4000, 4000)), min_size=n, max_size=n
        )
    )
)
def test_each_hears_all_others_never_itself(frames: list[np.ndarray]) -> None:
    data = [f.astype("<i2").tobytes() for f in frames]
    total = sum(f.astype(np.int64) for f in frames)
    assert np.array_equal(_np(mix(data)), total)
    outs = mix_minus(data)
    assert len(outs) == len(data)
    for frame, out in zip(frames, outs, strict=True):
        expected = total - frame.astype(np.int64) if len(frames) > 1 else np.zeros(160)
        assert np.array_equal(_np(out), expected)


def test_loud_parties_saturate_instead_of_wrapping() -> None:
    loud = np.full(160, 30000, dtype="<i2").tobytes()
    quiet = np.full(160, -30000, dtype="<i2").tobytes()
    outs = mix_minus([loud, loud, loud, quiet])
    assert np.all(_np(outs[3]) == 32767)
    assert np.all(_np(outs[0]) == 30000)  # the true sum, whatever the order of the inputs
    assert np.all(_np(mix([loud, loud, quiet])) == 30000)
    assert np.all(_np(mix([loud, loud, loud])) == 32767)
    assert mix([]) == SILENCE_FRAME


@given(
    st.integers(1, 5).flatmap(
        lambda n: st.lists(
            arrays(np.int16, 160, elements=st.integers(-32768, 32767)), min_size=n, max_size=n
        )
    )
)
def test_mix_and_minus_equals_mix_and_mix_minus_even_at_full_scale(
    frames: list[np.ndarray],
) -> None:
    data = [f.astype("<i2").tobytes() for f in frames]
    total = np.clip(sum(f.astype(np.int64) for f in frames), -32768, 32767)
    mixed, minus = mix_and_minus(data)
    assert np.array_equal(_np(mixed), total)
    assert mixed == mix(data)
    assert minus == mix_minus(data)


def test_scale_halves() -> None:
    frame = np.full(160, 1000, dtype="<i2").tobytes()
    assert np.all(_np(scale(frame, 0.5)) == 500)
