"""A full disk while recording: the owner is told at once, nothing is lost silently.

The fault is injected at the one I/O seam (`recordings.wavfile.pwrite`) with a fake disk that
has a byte budget: writes that grow a file consume it, and when it runs out the real syscall's
behaviour is imitated (a short write, then OSError(ENOSPC)). Header updates in place still work,
as on a real full disk.
"""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
import wave
from datetime import UTC, datetime
from pathlib import Path

import pytest
from pytest_mock import MockerFixture

from recordings import wavfile
from recordings.errors import RecordingWriteError
from recordings.writer import RecordingWriter, WriterState
from tests.recordings.rec_audio import read_wav, rms, tone_frame

START = datetime(2026, 11, 30, 3, 15, 0, tzinfo=UTC)
REAL_PWRITE = os.pwrite


class FakeDisk:
    """A disk with `free` bytes left; set `free = None` for unlimited space."""

    def __init__(self, free: int | None) -> None:
        self.free = free
        self.refused = 0

    def pwrite(self, fd: int, data: bytes | memoryview, offset: int) -> int:
        growth = offset + len(data) - os.fstat(fd).st_size
        if self.free is None or growth <= 0 or growth <= self.free:
            if self.free is not None and growth > 0:
                self.free -= growth
            return REAL_PWRITE(fd, data, offset)
        if self.free > 0 and offset <= os.fstat(fd).st_size:
            room = len(data) - (growth - self.free)
            self.free = 0
            return REAL_PWRITE(fd, bytes(data[:room]), offset)
        self.refused += 1
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def talk(writer: RecordingWriter, first_tick: int, ticks: int) -> None:
    """The caller says something (a 400 Hz tone) for `ticks` ticks."""
    for tick in range(first_tick, first_tick + ticks):
        frame = tone_frame(400, tick)
        writer.write(frame, {"caller": frame})


def state_of(writer: RecordingWriter) -> WriterState:
    """The writer's state, as its owner would poll it."""
    return writer.state


@pytest.fixture
def disk(mocker: MockerFixture) -> FakeDisk:
    fake = FakeDisk(free=None)
    mocker.patch.object(wavfile, "pwrite", side_effect=fake.pwrite)
    return fake


def test_disk_full_is_reported_and_audio_kept_until_space_returns(
    tmp_path: Path, disk: FakeDisk
) -> None:
    writer = RecordingWriter(tmp_path, "full-1", clock=lambda: START)
    talk(writer, 0, 50)
    writer.flush()
    disk.free = 1000  # the disk fills up during the second second of the call
    talk(writer, 50, 50)
    # What the owner (and so the supervisor's log) sees: an error naming the disk-full cause.
    with pytest.raises(RecordingWriteError) as failed:
        writer.flush()
    assert failed.value.errno == errno.ENOSPC
    assert "No space left on device" in str(failed.value)
    assert failed.value.buffered_s == pytest.approx(1.0)
    assert state_of(writer) is WriterState.FAILING
    talk(writer, 100, 50)
    with pytest.raises(RecordingWriteError):  # still full: reported again, not forgotten
        writer.flush()
    # What a player sees meanwhile: the file is valid up to what reached the disk.
    with wave.open(str(writer.directory / "caller.wav"), "rb") as w:
        assert 8000 <= w.getnframes() < 16000

    disk.free = None  # the operator frees space
    talk(writer, 150, 50)
    writer.flush()
    assert state_of(writer) is WriterState.RECORDING
    info = writer.finalise()

    caller = read_wav(info.tracks["caller"].path)
    assert len(caller) == 4 * 8000, "audio held in memory was not written after recovery"
    expected = b"".join(tone_frame(400, t) for t in range(200))
    assert caller.tobytes() == expected, "the recovered audio is not the call's audio in order"
    assert info.lost_s == 0
    assert any("No space left" in e for e in info.errors)
    assert any("recovered" in e for e in info.errors)


def test_long_outage_drops_audio_beyond_the_bound_and_says_so(
    tmp_path: Path, disk: FakeDisk
) -> None:
    writer = RecordingWriter(tmp_path, "full-2", clock=lambda: START, max_buffer_s=1.0)
    talk(writer, 0, 50)
    writer.flush()
    disk.free = 0
    for second in range(1, 4):  # 3 s outage, only 1 s may be held in memory
        talk(writer, second * 50, 50)
        with pytest.raises(RecordingWriteError) as failed:
            writer.flush()
    assert failed.value.lost_s == pytest.approx(2.0)
    disk.free = None
    writer.flush()  # the next periodic flush succeeds: the held second reaches the disk
    talk(writer, 200, 50)
    info = writer.finalise()

    caller, mixed = read_wav(info.tracks["caller"].path), read_wav(info.tracks["mixed"].path)
    assert len(caller) == len(mixed) == 5 * 8000, "tracks no longer match the call's timeline"
    assert rms(caller[8000:16000]) > 5000, "the held second is missing"
    assert rms(caller[16000:32000]) == 0, "the dropped 2 s should be silence"
    assert rms(caller[32000:]) > 5000
    assert info.lost_s == pytest.approx(2.0)
    assert info.errors


def test_disk_still_full_at_the_end_seals_what_is_on_disk(
    tmp_path: Path, disk: FakeDisk, mocker: MockerFixture
) -> None:
    writer = RecordingWriter(tmp_path, "full-3", clock=lambda: START)
    talk(writer, 0, 50)
    writer.flush()
    disk.free = 0
    talk(writer, 50, 50)
    # The manifest is written through the same seam; let it through, as a real disk with a
    # few blocks reserved for small files would. Only the audio tracks hit the full disk.
    info_disk = FakeDisk(free=None)

    def audio_full(fd: int, data: bytes | memoryview, offset: int) -> int:
        if os.readlink(f"/proc/self/fd/{fd}").endswith(".wav"):
            return disk.pwrite(fd, data, offset)
        return info_disk.pwrite(fd, data, offset)

    mocker.patch.object(wavfile, "pwrite", side_effect=audio_full)
    info = writer.finalise()

    assert info.tracks["caller"].duration_s == pytest.approx(1.0)
    assert info.lost_s == pytest.approx(1.0), "the last second never reached the disk"
    assert any("No space left" in e for e in info.errors)
    assert len(read_wav(info.tracks["caller"].path)) == 8000


def test_short_write_then_enospc_keeps_the_file_consistent(tmp_path: Path, disk: FakeDisk) -> None:
    writer = RecordingWriter(tmp_path, "full-4", clock=lambda: START)
    talk(writer, 0, 50)
    writer.flush()
    disk.free = 1001  # odd: a write stops in the middle of a sample
    talk(writer, 50, 50)
    with pytest.raises(RecordingWriteError):
        writer.flush()
    disk.free = None
    writer.flush()
    info = writer.finalise()
    caller = read_wav(info.tracks["caller"].path)
    assert caller.tobytes() == b"".join(tone_frame(400, t) for t in range(100))


def test_real_kernel_refusal_is_reported_and_the_file_stays_playable(tmp_path: Path) -> None:
    """No mock: the kernel itself refuses to grow the files (RLIMIT_FSIZE gives EFBIG)."""
    limit = 20_000  # bytes per file: 1.25 s of audio
    done = subprocess.run(
        [sys.executable, "-m", "tests.recordings.rec_fsize_child", str(tmp_path), str(limit)],
        cwd=Path(__file__).resolve().parents[2],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    errors = [line for line in lines if "flush_error" in line]
    # The owner is told on the flush of second 2 and again on second 3, never silently.
    assert len(errors) == 2 and {e["errno"] for e in errors} == {errno.EFBIG}
    assert "File too large" in errors[0]["flush_error"]
    info = lines[-1]["info"]
    kept = (limit - 44) // 2 / 8000
    assert info["tracks"]["caller"]["duration_s"] == pytest.approx(kept)
    assert info["lost_s"] == pytest.approx(3.0 - kept)
    assert any("File too large" in e for e in info["errors"])
    caller = read_wav(Path(lines[-1]["directory"]) / "caller.wav")
    assert caller.tobytes() == b"".join(tone_frame(400, t) for t in range(150))[: len(caller) * 2]


def test_a_recording_with_dropped_audio_is_not_healthy(tmp_path: Path, disk: FakeDisk) -> None:
    """The dropped span is written as silence, so the tracks keep the call's length and no
    other finding sees the hole: the health check must report the manifest's `lost_s`, from the
    info (as stored when the call ends) and from the directory (the daily verification)."""
    from recordings.health import Problem, check

    writer = RecordingWriter(tmp_path, "full-5", clock=lambda: START, max_buffer_s=1.0)
    talk(writer, 0, 50)
    writer.flush()
    disk.free = 0
    for second in range(1, 4):
        talk(writer, second * 50, 50)
        with pytest.raises(RecordingWriteError):
            writer.flush()
    disk.free = None
    writer.flush()
    talk(writer, 200, 50)
    info = writer.finalise()
    assert info.lost_s == pytest.approx(2.0)
    for report in (check(info, 5.0), check(info.directory, 5.0)):
        assert not report.ok
        assert report.has(Problem.AUDIO_LOST)
        assert not report.has(Problem.TOO_SHORT)  # the length alone hides the hole
        (found,) = [f for f in report.findings if f.problem is Problem.AUDIO_LOST]
        assert "2.0 s" in found.detail and "No space left" in found.detail

    # a failure the memory bound absorbed loses nothing and stays healthy
    kept = RecordingWriter(tmp_path, "full-6", clock=lambda: START)
    talk(kept, 0, 50)
    disk.free = 0
    with pytest.raises(RecordingWriteError):
        kept.flush()
    disk.free = None
    talk(kept, 50, 50)
    kept_info = kept.finalise()
    assert kept_info.lost_s == 0 and kept_info.errors
    assert check(kept_info.directory, 2.0).ok
