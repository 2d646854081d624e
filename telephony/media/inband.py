"""In-band DTMF: a Goertzel detector with level, twist, purity and duration checks, and the
tone synthesiser used for tests and prompts.

Per 20 ms frame (160 samples) the detector takes the DFT term at each of the eight DTMF
frequencies, the value the Goertzel recursion computes, as two dot products with stored cosine
and sine references done in C (`audioop.findfactor`), so a frame costs a few microseconds.
A digit is reported once, at its onset, after it was seen in two consecutive frames (>= 40 ms,
ITU-T Q.24 accepts 40 ms and rejects under 23 ms); another needs two frames without it.
"""

from __future__ import annotations

import math
from array import array

from telephony.media.g711 import FRAME_SAMPLES, SAMPLE_RATE, SAMPLE_WIDTH, audioop
from telephony.types import DtmfDigit

ROW_FREQS = (697.0, 770.0, 852.0, 941.0)
COL_FREQS = (1209.0, 1336.0, 1477.0, 1633.0)
KEYPAD = ("123A", "456B", "789C", "*0#D")
MIN_TONE_RMS = 200.0  # each tone's amplitude/sqrt2 in 16-bit units (about -44 dBFS)
MAX_TWIST_DB = 8.0  # high group weaker than low group by at most this (normal twist)
MAX_REVERSE_TWIST_DB = 4.0  # high group stronger than low group by at most this
MIN_PEAK_RATIO_DB = 6.0  # the chosen tone must beat the others of its group by this
MIN_TONE_SHARE = 0.5  # the two tones must carry at least this share of the frame's energy
HITS_TO_REPORT = 2
MISSES_TO_RELEASE = 2


_REF_AMPLITUDE = 16384


def _reference(freq: float, phase: float) -> tuple[bytes, float]:
    ref = array(
        "h",
        (
            round(_REF_AMPLITUDE * math.cos(2 * math.pi * freq * n / SAMPLE_RATE + phase))
            for n in range(FRAME_SAMPLES)
        ),
    )
    energy = float(sum(v * v for v in ref))
    return ref.tobytes(), energy


_REFS = [(_reference(f, 0.0), _reference(f, -math.pi / 2)) for f in ROW_FREQS + COL_FREQS]


def tone_power(frame: bytes, index: int) -> float:
    """Mean power of the frame's component at DTMF frequency `index` (0-3 rows, 4-7 columns)."""
    (cos_ref, cos_energy), (sin_ref, sin_energy) = _REFS[index]
    c = audioop.findfactor(frame, cos_ref) * cos_energy / _REF_AMPLITUDE
    s = audioop.findfactor(frame, sin_ref) * sin_energy / _REF_AMPLITUDE
    return 2.0 * (c * c + s * s) / (FRAME_SAMPLES * FRAME_SAMPLES)


def classify(frame: bytes) -> str | None:
    """The DTMF digit present in one 20 ms s16le frame, or None."""
    if len(frame) != FRAME_SAMPLES * SAMPLE_WIDTH:
        raise ValueError(f"in-band detector needs {FRAME_SAMPLES}-sample frames")
    rms = audioop.rms(frame, SAMPLE_WIDTH)
    if rms < MIN_TONE_RMS:
        return None
    powers = [tone_power(frame, i) for i in range(8)]
    rows, cols = powers[:4], powers[4:]
    r = max(range(4), key=rows.__getitem__)
    c = max(range(4), key=cols.__getitem__)
    row_p, col_p = rows[r], cols[c]
    floor = MIN_TONE_RMS * MIN_TONE_RMS
    if row_p < floor or col_p < floor:
        return None
    twist_db = 10.0 * math.log10(col_p / row_p)
    if not -MAX_TWIST_DB <= twist_db <= MAX_REVERSE_TWIST_DB:
        return None
    peak = 10.0 ** (MIN_PEAK_RATIO_DB / 10.0)
    if any(p * peak > row_p for i, p in enumerate(rows) if i != r):
        return None
    if any(p * peak > col_p for i, p in enumerate(cols) if i != c):
        return None
    if row_p + col_p < MIN_TONE_SHARE * float(rms) * rms:
        return None
    return KEYPAD[r][c]


class InbandDetector:
    """Key presses from a stream of 20 ms frames; `feed` returns a digit at its onset."""

    def __init__(self) -> None:
        self._active: str | None = None  # the digit being held, already reported
        self._misses = 0
        self._run: str | None = None  # a candidate digit and how many frames in a row
        self._run_len = 0
        self._onset = 0.0

    def feed(self, frame: bytes, now: float) -> DtmfDigit | None:
        """One frame that ended at `now`; returns a newly confirmed key press."""
        digit = classify(frame)
        if self._active is not None:
            if digit == self._active:
                self._misses = 0
                return None
            self._misses += 1
            if self._misses < MISSES_TO_RELEASE:
                return None  # one frame of dropout inside a key press
            self._active = None
        if digit is None:
            self._run, self._run_len = None, 0
            return None
        if digit == self._run:
            self._run_len += 1
        else:
            self._run, self._run_len, self._onset = digit, 1, now - 0.02
        if self._run_len < HITS_TO_REPORT:
            return None
        self._active, self._misses = digit, 0
        self._run, self._run_len = None, 0
        return DtmfDigit(digit, "inband", self._onset, int((now - self._onset) * 1000))


def dtmf_tone(digit: str, ms: int, level: float = 0.25) -> bytes:
    """s16le samples of a DTMF key press: both tones at `level` of full scale each."""
    for r, row in enumerate(KEYPAD):
        c = row.find(digit)
        if c >= 0:
            f1, f2 = ROW_FREQS[r], COL_FREQS[c]
            break
    else:
        raise ValueError(f"not a DTMF digit: {digit!r}")
    n = ms * SAMPLE_RATE // 1000
    amp = level * 32767
    return array(
        "h",
        (
            round(
                amp
                * (
                    math.sin(2 * math.pi * f1 * i / SAMPLE_RATE)
                    + math.sin(2 * math.pi * f2 * i / SAMPLE_RATE)
                )
            )
            for i in range(n)
        ),
    ).tobytes()
