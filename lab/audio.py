"""Test audio: make tone WAVs and measure how much of a tone a recording holds.

Stdlib only for making WAVs; the band measurement uses ``sox`` (a band-pass ``sinc``
filter followed by ``stat``), which the lab needs anyway, so the demo works without numpy.

Levels are in dBFS where 0 dB is the RMS of a constant full-scale signal (amplitude 1.0):
a full-scale sine measures -3 dB, a sine of amplitude 0.5 about -9 dB.
"""

from __future__ import annotations

import array
import math
import re
import subprocess
import sys
import wave
from collections.abc import Iterable
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
    if freqs and all(f == int(f) for f in freqs):
        # integer frequencies repeat exactly every second: compute one, repeat it
        one = _sines(freqs, rate, min(n, rate), peak)
        samples = (one * (n // len(one) + 1))[:n]
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
    m = re.search(r"RMS\s+amplitude:\s*([0-9.eE+-]+)", res.stderr)
    if res.returncode != 0 or m is None:
        raise RuntimeError(f"sox failed on {wav}: {res.stderr.strip()}")
    rms = float(m.group(1))
    if rms <= 0:
        return SILENCE_DB
    return max(SILENCE_DB, 20 * math.log10(rms))


def total_level_db(wav: Path, start: float = 0.0, end: float | None = None) -> float:
    """Overall RMS level (dBFS) of ``wav``."""
    argv = ["sox", str(wav), "-n"]
    if start or end is not None:
        argv += ["trim", f"{start}"] + ([f"={end}"] if end is not None else [])
    argv += ["stat"]
    res = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=60)
    m = re.search(r"RMS\s+amplitude:\s*([0-9.eE+-]+)", res.stderr)
    if res.returncode != 0 or m is None:
        raise RuntimeError(f"sox failed on {wav}: {res.stderr.strip()}")
    rms = float(m.group(1))
    return SILENCE_DB if rms <= 0 else max(SILENCE_DB, 20 * math.log10(rms))


def tone_report(
    wav: Path,
    freqs: Iterable[float],
    bandwidth: float = 80.0,
    start: float = 0.0,
    end: float | None = None,
) -> dict[float, float]:
    """``{freq: band level dBFS}`` for each frequency."""
    return {float(f): band_level_db(wav, f, bandwidth, start, end) for f in freqs}
