"""Crash recovery: after a crash each recording plays up to the crash and is marked interrupted."""

from __future__ import annotations

import os
import selectors
import signal
import subprocess
import sys
import time
import wave
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from recordings.errors import RecoveryError
from recordings.info import read_manifest
from recordings.recovery import recover, unfinalised
from recordings.writer import RecordingWriter
from tests.recordings.rec_audio import dominant_hz, read_wav, tone_frame

PROJECT = Path(__file__).resolve().parents[2]
START = datetime(2026, 11, 30, 3, 15, 0, tzinfo=UTC)


@pytest.fixture
def spawn() -> Iterator[list[subprocess.Popen[str]]]:
    """Processes started by a test; each is killed by PID and reaped even if the test fails."""
    procs: list[subprocess.Popen[str]] = []
    yield procs
    for proc in procs:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        if proc.stdout:
            proc.stdout.close()


def read_line(proc: subprocess.Popen[str], timeout: float) -> str:
    """The child's first stdout line, or fail after `timeout` seconds."""
    assert proc.stdout is not None
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        if not sel.select(timeout):
            pytest.fail(f"child printed nothing within {timeout} s")
    return proc.stdout.readline()


@pytest.mark.slow
def test_sigkill_mid_call_leaves_a_recording_that_plays_up_to_the_kill(
    tmp_path: Path, spawn: list[subprocess.Popen[str]]
) -> None:
    child = subprocess.Popen(
        [sys.executable, "-m", "tests.recordings.rec_crash_child", str(tmp_path), "call-77"],
        cwd=PROJECT,
        stdout=subprocess.PIPE,
        text=True,
    )
    spawn.append(child)
    line = read_line(child, timeout=20)
    started = time.monotonic()
    assert line.startswith("recording "), line
    time.sleep(3.2)
    os.kill(child.pid, signal.SIGKILL)
    killed_after = time.monotonic() - started
    assert child.wait(timeout=10) == -signal.SIGKILL

    assert [d.name for d in unfinalised(tmp_path)] == ["call-77"]
    [info] = recover(tmp_path)

    assert info.interrupted and info.recording_id == "call-77"
    assert killed_after - 2.0 <= info.duration_s <= killed_after + 0.1
    assert (info.ended_at - info.started_at).total_seconds() == pytest.approx(info.duration_s)
    for role, hz in (("caller", 400), ("unit", 1800), ("mixed", 400)):
        path = info.tracks[role].path
        samples = read_wav(path)  # the stdlib wave module opens it
        assert len(samples) / 8000 == pytest.approx(info.tracks[role].duration_s)
        assert dominant_hz(samples) == pytest.approx(hz, abs=5)
        sox = subprocess.run(["sox", str(path), "-n", "stat"], capture_output=True, text=True)
        assert sox.returncode == 0, sox.stderr
        assert f"Length (seconds):{' ' * 4}" in sox.stderr
        sox_len = float(sox.stderr.split("Length (seconds):")[1].split()[0])
        assert sox_len == pytest.approx(info.tracks[role].duration_s, abs=0.001)
    assert read_manifest(info.directory).interrupted
    assert recover(tmp_path) == [], "a recovered recording must not be recovered twice"


def test_recover_repairs_headers_that_lag_the_data(tmp_path: Path) -> None:
    writer = RecordingWriter(tmp_path, "lagging", clock=lambda: START)
    for tick in range(50):
        frame = tone_frame(400, tick)
        writer.write(frame, {"caller": frame})
    writer.flush()
    caller = writer.directory / "caller.wav"
    # Crash between a data write and its header update, in the middle of a sample:
    extra = b"".join(tone_frame(400, t) for t in range(50, 75)) + b"\x7f"
    with caller.open("ab") as f:
        f.write(extra)
    (writer.directory / "unit.wav").write_bytes(b"RIFF\x00")  # died while creating a track
    finalised = RecordingWriter(tmp_path, "finished", clock=lambda: START)
    finalised.finalise()

    [info] = recover(tmp_path)

    assert info.recording_id == "lagging" and info.interrupted
    assert info.tracks["caller"].frames == 75 * 160
    assert read_wav(caller).tobytes() == b"".join(tone_frame(400, t) for t in range(75))
    assert info.tracks["mixed"].frames == 50 * 160
    assert info.tracks["unit"].frames == 0
    with wave.open(str(writer.directory / "unit.wav"), "rb") as w:
        assert w.getnframes() == 0
    assert any("different times" in e for e in info.errors)
    assert info.started_at == START


def test_one_broken_recording_does_not_stop_the_others(tmp_path: Path) -> None:
    for name in ("good", "broken"):
        writer = RecordingWriter(tmp_path, name, clock=lambda: START)
        writer.write(bytes(320), {"caller": bytes(320)})
        writer.flush()
    broken = tmp_path / "2026/11/30/broken/caller.wav"
    broken.write_bytes(b"this is not a wav file at all, it is far too long for a header")

    with pytest.raises(RecoveryError) as failed:
        recover(tmp_path)

    assert [i.recording_id for i in failed.value.recovered] == ["good"]
    assert failed.value.failures[0][0].endswith("broken")
    assert [d.name for d in unfinalised(tmp_path)] == ["broken"], "broken one must stay visible"
