"""Mandarin prompts generated with espeak-ng + sox: valid 8 kHz WAVs with speech in them."""

from __future__ import annotations

import math
import wave
from array import array
from pathlib import Path

import pytest

from calls.prompts import (
    CATALOGUE,
    PromptError,
    convert_recording,
    ensure_prompts,
    inspect_prompt,
    prompt_path,
    synthesise,
)


def _frame_levels(path: Path, frame: int = 160) -> list[float]:
    with wave.open(str(path), "rb") as w:
        samples = array("h", w.readframes(w.getnframes()))
    levels = []
    for i in range(0, len(samples) - frame, frame):
        chunk = samples[i : i + frame]
        ms = sum(s * s for s in chunk) / frame
        levels.append(-120.0 if ms == 0 else 10 * math.log10(ms / 32768**2))
    return levels


def test_survey_question_is_an_8khz_wav_with_speech(tmp_path: Path) -> None:
    target = tmp_path / "q.wav"
    synthesise(CATALOGUE["survey.question"].spoken, target)
    info = inspect_prompt(target)
    assert (info.sample_rate, info.channels, info.sample_width) == (8000, 1, 2)
    assert 5.0 < info.duration_s < 30.0
    levels = _frame_levels(target)
    loud = sum(1 for db in levels if db > -35) / len(levels)
    assert loud > 0.4, f"only {loud:.0%} of 20 ms frames carry sound"
    assert max(levels) - min(levels) > 25  # syllables and pauses, not a constant tone or noise


def test_ensure_prompts_keeps_the_agencys_own_recording(tmp_path: Path) -> None:
    own = prompt_path(tmp_path, "survey.thanks")
    own.parent.mkdir(parents=True)
    with wave.open(str(own), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(array("h", [1000, -1000] * 4000).tobytes())
    before = own.read_bytes()
    paths = ensure_prompts(tmp_path)
    assert set(paths) == set(CATALOGUE)
    assert own.read_bytes() == before
    for key, path in paths.items():
        assert inspect_prompt(path).duration_s >= 1.0, key


def test_wrong_format_is_refused_and_can_be_converted(tmp_path: Path) -> None:
    cd_quality = tmp_path / "agency.wav"
    with wave.open(str(cd_quality), "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(44100)
        tone = [int(8000 * math.sin(2 * math.pi * 440 * n / 44100)) for n in range(44100)]
        w.writeframes(array("h", [v for s in tone for v in (s, s)]).tobytes())
    with pytest.raises(PromptError, match="8000 Hz mono 16-bit"):
        inspect_prompt(cd_quality)
    converted = tmp_path / "prompts" / "survey_question.wav"
    convert_recording(cd_quality, converted)
    info = inspect_prompt(converted)
    assert info.sample_rate == 8000 and abs(info.duration_s - 1.0) < 0.05
