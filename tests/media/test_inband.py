"""In-band DTMF: the Goertzel detector with its level, twist and duration checks."""

from __future__ import annotations

import math
import shutil
import subprocess
import wave
from array import array
from pathlib import Path

import pytest

from telephony.media.inband import COL_FREQS, ROW_FREQS, InbandDetector, classify, dtmf_tone
from telephony.media.playback import Prompt

ALL = "123A456B789C*0#D"


def _sines(freqs: list[tuple[float, float]], ms: int) -> bytes:
    n = ms * 8
    return array(
        "h",
        (
            round(sum(a * 32767 * math.sin(2 * math.pi * f * i / 8000) for f, a in freqs))
            for i in range(n)
        ),
    ).tobytes()


def _detect(pcm: bytes, offset_samples: int = 0) -> list[str]:
    pcm = bytes(2 * offset_samples) + pcm
    pcm += bytes(-len(pcm) % 320)
    det = InbandDetector()
    out = []
    for k in range(len(pcm) // 320):
        found = det.feed(pcm[k * 320 : (k + 1) * 320], 0.02 * (k + 1))
        if found is not None:
            out.append(found.digit)
    return out


def _sequence(digits: str, tone_ms: int = 80, gap_ms: int = 80, level: float = 0.2) -> bytes:
    return b"".join(dtmf_tone(d, tone_ms, level) + bytes(gap_ms * 16) for d in digits)


@pytest.mark.parametrize("offset", [0, 37, 111])
def test_every_key_once_and_in_order_whatever_the_frame_alignment(offset: int) -> None:
    assert _detect(_sequence(ALL), offset) == list(ALL)


def test_repeated_key_with_short_gaps() -> None:
    assert _detect(_sequence("5555", tone_ms=60, gap_ms=60)) == list("5555")


def test_a_tone_shorter_than_two_frames_is_rejected() -> None:
    assert _detect(_sequence("9", tone_ms=20)) == []


def test_twist_beyond_the_limits_is_rejected() -> None:
    row, col = ROW_FREQS[1], COL_FREQS[1]  # "5"
    assert classify(_sines([(row, 0.2), (col, 0.2 * 10 ** (-6 / 20))], 20)) == "5"
    assert classify(_sines([(row, 0.2), (col, 0.2 * 10 ** (-12 / 20))], 20)) is None
    assert classify(_sines([(row, 0.2 * 10 ** (-6 / 20)), (col, 0.2)], 20)) is None


def test_single_tones_quiet_tones_and_noisy_tones_are_rejected() -> None:
    assert classify(_sines([(ROW_FREQS[0], 0.3)], 20)) is None
    assert classify(_sines([(ROW_FREQS[0], 0.004), (COL_FREQS[0], 0.004)], 20)) is None
    chord = [(ROW_FREQS[0], 0.1), (COL_FREQS[0], 0.1), (440.0, 0.2), (2000.0, 0.2)]
    assert classify(_sines(chord, 20)) is None


def test_digits_in_a_wav_prompt_at_another_rate(tmp_path: Path) -> None:
    pcm8k = _sequence("2580#")
    path = tmp_path / "digits16k.wav"
    up = array("h")
    src = array("h", pcm8k)
    for v in src:  # crude 2x upsampling is enough for a 16 kHz WAV
        up.extend((v, v))
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(up.tobytes())
    assert _detect(Prompt.from_wav(path).pcm) == list("2580#")


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng not installed")
def test_speech_does_not_talk_off_digits(tmp_path: Path) -> None:
    path = tmp_path / "speech.wav"
    text = "满意请按一，基本满意请按二，不满意请按三。谢谢您的配合，再见。"
    subprocess.run(["espeak-ng", "-v", "cmn", "-w", str(path), text], check=True, timeout=30)
    assert _detect(Prompt.from_wav(path).pcm) == []


@pytest.mark.parametrize(("deviation", "accepted"), [(0.0, True), (0.015, True), (0.035, False)])
def test_frequency_tolerance_of_q24(deviation: float, accepted: bool) -> None:
    """ITU-T Q.24: accept tones within 1.5 % of nominal, reject beyond 3.5 %."""
    for r, c, digit in ((0, 0, "1"), (3, 3, "D"), (2, 2, "9")):
        pcm = _sines(
            [(ROW_FREQS[r] * (1 + deviation), 0.1), (COL_FREQS[c] * (1 + deviation), 0.1)], 20
        )
        assert (classify(pcm) == digit) is accepted
