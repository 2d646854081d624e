"""Test audio: make tone WAVs and measure how much of a tone a recording holds.

Stdlib only for making WAVs; the band measurement uses ``sox`` (a band-pass ``sinc``
filter followed by ``stat``), which the lab needs anyway, so the demo works without numpy.

Levels are in dBFS where 0 dB is the RMS of a constant full-scale signal (amplitude 1.0):
a full-scale sine measures -3 dB, a sine of amplitude 0.5 about -9 dB.
"""

from __future__ import annotations

import array
import math
import os
import re
import subprocess
import sys
import tempfile
import threading
import wave
from collections.abc import Iterable
from fractions import Fraction
from pathlib import Path

SILENCE_DB = -120.0


def make_tone_wav(
    path: Path,
    freq_hz: float | Iterable[float] | None,
    seconds: float = 60.0,
    rate: int = 8000,
    amplitude: float = 0.3,
) -> Path:
    """Write a mono s16 WAV holding a sine (or a sum of sines, or silence if None).

    ``amplitude`` is the peak of each sine relative to full scale.
    """
    freqs: list[float]
    if freq_hz is None:
        freqs = []
    elif isinstance(freq_hz, (int, float)):
        freqs = [float(freq_hz)]
    else:
        freqs = [float(f) for f in freq_hz]
    n = int(seconds * rate)
    peak = 32767 * amplitude
    period = _period_samples(freqs, rate)
    if period is not None and period < n:
        # the signal repeats exactly after ``period`` samples: compute one, repeat it
        one = _sines(freqs, rate, period, peak)
        samples = (one * (n // period + 1))[:n]
    else:
        samples = _sines(freqs, rate, n, peak)
    if sys.byteorder == "big":
        samples.byteswap()
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(samples.tobytes())
    return path


def _period_samples(freqs: list[float], rate: int, max_seconds: int = 10) -> int | None:
    """Samples after which a sum of sines repeats exactly (None: not within max_seconds)."""
    seconds = 1
    for f in freqs:
        frac = Fraction(f).limit_denominator(max_seconds)
        if float(frac) != f:
            return None
        seconds = math.lcm(seconds, frac.denominator)
    return seconds * rate if seconds <= max_seconds else None


def _sines(freqs: list[float], rate: int, n: int, peak: float) -> array.array[int]:
    samples = array.array("h", bytes(2 * n))
    if freqs:
        steps = [2 * math.pi * f / rate for f in freqs]
        for i in range(n):
            v = 0.0
            for step in steps:
                v += math.sin(step * i)
            samples[i] = max(-32768, min(32767, round(peak * v)))
    return samples


def make_ulaw_raw(
    path: Path, freq_hz: float | None, seconds: float = 20.0, amplitude: float = 0.3
) -> Path:
    """Write headerless 8 kHz G.711 µ-law (for SIPp's ``rtp_stream``)."""
    wav = path.with_suffix(".tmp.wav")
    make_tone_wav(wav, freq_hz, seconds, 8000, amplitude)
    subprocess.run(
        [
            "sox",
            str(wav),
            "-t",
            "raw",
            "-r",
            "8000",
            "-c",
            "1",
            "-e",
            "u-law",
            "-b",
            "8",
            str(path),
        ],
        check=True,
        capture_output=True,
    )
    wav.unlink()
    return path


def wav_complete(wav: Path) -> bool:
    """True when the WAV's RIFF and data chunk sizes match the file (writer closed it)."""
    try:
        with wav.open("rb") as f:
            head = f.read(4096)
            size = wav.stat().st_size
    except OSError:
        return False
    if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        return False
    riff = int.from_bytes(head[4:8], "little")
    pos = 12
    while pos + 8 <= len(head):
        cid, clen = head[pos : pos + 4], int.from_bytes(head[pos + 4 : pos + 8], "little")
        if cid == b"data":
            return riff == size - 8 and clen == size - pos - 8
        pos += 8 + clen + (clen & 1)
    return False


def wav_duration(wav: Path) -> float:
    with wave.open(str(wav), "rb") as w:
        return w.getnframes() / float(w.getframerate())


def band_level_db(
    wav: Path,
    freq_hz: float,
    bandwidth: float = 80.0,
    start: float = 0.0,
    end: float | None = None,
) -> float:
    """RMS level (dBFS) of ``wav`` in the band ``freq_hz ± bandwidth/2``.

    ``start``/``end`` (seconds) restrict the measurement, e.g. to skip call setup.
    Returns ``SILENCE_DB`` for an empty band or file.
    """
    lo = max(1.0, freq_hz - bandwidth / 2)
    hi = freq_hz + bandwidth / 2
    argv = ["sox", str(wav), "-n"]
    if start or end is not None:
        argv += ["trim", f"{start}"] + ([f"={end}"] if end is not None else [])
    # a 10 Hz transition band: sox's default (wider than a narrow band) would attenuate
    # the band centre itself (-1.5 dB for an 80 Hz band)
    tbw = min(10.0, bandwidth / 4)
    argv += ["sinc", "-t", f"{tbw:g}", f"{lo:g}-{hi:g}", "stat"]
    res = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=60)
    return _rms_db(res, wav)


def total_level_db(wav: Path, start: float = 0.0, end: float | None = None) -> float:
    """Overall RMS level (dBFS) of ``wav``."""
    argv = ["sox", str(wav), "-n"]
    if start or end is not None:
        argv += ["trim", f"{start}"] + ([f"={end}"] if end is not None else [])
    argv += ["stat"]
    res = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=60)
    return _rms_db(res, wav)


def _rms_db(res: subprocess.CompletedProcess[str], wav: Path) -> float:
    m = re.search(r"RMS\s+amplitude:\s*(\S+)", res.stderr)
    if res.returncode != 0 or m is None:
        raise RuntimeError(f"sox failed on {wav}: {res.stderr.strip()}")
    try:
        rms = float(m.group(1))
    except ValueError:  # "-": nothing left to measure (e.g. trimmed past the end)
        return SILENCE_DB
    return SILENCE_DB if rms <= 0 else max(SILENCE_DB, 20 * math.log10(rms))


def cached_tone_wav(
    freq_hz: float | None, seconds: float, amplitude: float, rate: int = 8000
) -> Path:
    """A shared tone WAV in ``<tmp>/linkcall-lab-tones`` (made once, atomically)."""
    name = f"tone-{freq_hz or 0:g}Hz-{amplitude:g}-{seconds:g}s-{rate}.wav"
    path = Path(tempfile.gettempdir()) / "linkcall-lab-tones" / name
    if not path.exists():
        tmp = path.with_name(f".{name}.{os.getpid()}.{threading.get_ident()}")
        make_tone_wav(tmp, freq_hz, seconds, rate, amplitude)
        os.replace(tmp, path)
    return path


def tone_report(
    wav: Path,
    freqs: Iterable[float],
    bandwidth: float = 80.0,
    start: float = 0.0,
    end: float | None = None,
) -> dict[float, float]:
    """``{freq: band level dBFS}`` for each frequency."""
    return {float(f): band_level_db(wav, f, bandwidth, start, end) for f in freqs}
