"""Test helpers for tests/recordings: tone frames and spectrum checks (numpy, tests only)."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np

RATE = 8000
FRAME_SAMPLES = 160


def tone_frame(freq: float, tick: int, amplitude: float = 0.3) -> bytes:
    """Return 20 ms of a sine at `freq` Hz, phase-continuous across ticks."""
    n = np.arange(tick * FRAME_SAMPLES, (tick + 1) * FRAME_SAMPLES)
    samples = amplitude * 32767 * np.sin(2 * np.pi * freq * n / RATE)
    return samples.astype("<i2").tobytes()


def mix(*frames: bytes) -> bytes:
    """Sum 16-bit frames with clipping, as a mixer would."""
    total = sum(np.frombuffer(f, "<i2").astype(np.int32) for f in frames)
    return np.clip(total, -32768, 32767).astype("<i2").tobytes()


def read_wav(path: Path) -> np.ndarray:
    """Read a track with the stdlib wave module (what a player does) and check its format."""
    with wave.open(str(path), "rb") as w:
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (8000, 1, 2)
        return np.frombuffer(w.readframes(w.getnframes()), "<i2")


def dominant_hz(samples: np.ndarray) -> float:
    """Frequency with the most energy in `samples`."""
    spectrum = np.abs(np.fft.rfft(samples.astype(np.float64)))
    return float(np.fft.rfftfreq(len(samples), 1 / RATE)[int(np.argmax(spectrum))])


def energy_at(samples: np.ndarray, freq: float) -> float:
    """Fraction of the spectrum's energy within 20 Hz of `freq`."""
    spectrum = np.abs(np.fft.rfft(samples.astype(np.float64))) ** 2
    freqs = np.fft.rfftfreq(len(samples), 1 / RATE)
    return float(spectrum[np.abs(freqs - freq) < 20].sum() / max(spectrum.sum(), 1e-9))


def rms(samples: np.ndarray) -> float:
    """Root mean square of int16 samples."""
    return float(np.sqrt(np.mean(samples.astype(np.float64) ** 2))) if len(samples) else 0.0
