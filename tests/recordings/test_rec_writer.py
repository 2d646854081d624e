"""RecordingWriter: what a supervisor finds on disk after a call was recorded."""

from __future__ import annotations

import hashlib
import json
import os
import stat
import subprocess
import wave
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pytest_mock import MockerFixture

from recordings.errors import RecordingStateError
from recordings.writer import RecordingWriter, WriterState
from tests.recordings.rec_audio import dominant_hz, energy_at, mix, read_wav, rms, tone_frame

TONES = {"caller": 400.0, "dispatcher": 1000.0, "unit": 1800.0}
START = datetime(2026, 11, 30, 3, 15, 0, tzinfo=UTC)


class FakeClock:
    """A wall clock the test moves by hand."""

    def __init__(self, now: datetime = START) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def record_three_way(writer: RecordingWriter, seconds: float, clock: FakeClock) -> None:
    """Feed `seconds` of a three-way call, flushing once per second like the owner would."""
    for tick in range(int(seconds * 50)):
        frames = {role: tone_frame(hz, tick) for role, hz in TONES.items()}
        writer.write(mix(*frames.values()), frames)
        if tick % 50 == 49:
            writer.flush()
    clock.now += timedelta(seconds=seconds)


def test_three_way_call_gives_mixed_and_party_tracks(tmp_path: Path) -> None:
    clock = FakeClock()
    writer = RecordingWriter(tmp_path, "rec-1", clock=clock)
    record_three_way(writer, 3.0, clock)
    info = writer.finalise()

    assert info.directory == tmp_path / "2026/11/30/rec-1"
    assert sorted(info.tracks) == ["caller", "dispatcher", "mixed", "unit"]
    assert info.duration_s == pytest.approx(3.0)
    assert (info.started_at, info.ended_at) == (START, START + timedelta(seconds=3))
    assert not info.interrupted and info.lost_s == 0 and info.errors == ()
    for role, hz in TONES.items():
        samples = read_wav(info.tracks[role].path)
        assert len(samples) == 24000
        assert dominant_hz(samples) == pytest.approx(hz, abs=5)
        assert energy_at(samples, hz) > 0.95, f"{role} track holds another party"
    mixed = read_wav(info.tracks["mixed"].path)
    for hz in TONES.values():
        assert energy_at(mixed, hz) > 0.2, f"mixed track lacks {hz} Hz"


def test_hashes_verify_with_standard_tools_and_files_are_read_only(tmp_path: Path) -> None:
    clock = FakeClock()
    writer = RecordingWriter(tmp_path, "rec-2", clock=clock)
    record_three_way(writer, 1.0, clock)
    info = writer.finalise()

    for track in info.tracks.values():
        body = track.path.read_bytes()
        assert hashlib.sha256(body).hexdigest() == track.sha256
        assert track.size_bytes == len(body) == 44 + 16000
        assert not track.path.stat().st_mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH)
    check = subprocess.run(
        ["sha256sum", "-c", "SHA256SUMS"], cwd=info.directory, capture_output=True, text=True
    )
    assert check.returncode == 0, check.stdout + check.stderr
    sums = (info.directory / "SHA256SUMS").read_bytes()
    assert hashlib.sha256(sums).hexdigest() == info.manifest_sha256
    caller = info.tracks["caller"]
    assert caller.rms == pytest.approx(0.3 * 32767 / 2**0.5, rel=0.02)
    assert caller.peak == pytest.approx(0.3 * 32767, rel=0.01)


def test_missing_party_gets_silence_and_late_party_stays_aligned(tmp_path: Path) -> None:
    writer = RecordingWriter(tmp_path, "rec-3", clock=FakeClock())
    for tick in range(150):  # 3 s; the unit joins at 1 s; the caller is missing in 2.0-2.5 s
        frames = {"caller": tone_frame(400, tick), "dispatcher": tone_frame(1000, tick)}
        if tick >= 50:
            frames["unit"] = tone_frame(1800, tick)
        if 100 <= tick < 125:
            del frames["caller"]
        writer.write(mix(*frames.values()), frames)
        if tick % 20 == 0:
            writer.flush()
    info = writer.finalise()

    unit, caller = read_wav(info.tracks["unit"].path), read_wav(info.tracks["caller"].path)
    assert len(unit) == len(caller) == len(read_wav(info.tracks["mixed"].path)) == 24000
    assert rms(unit[:8000]) == 0, "the unit is heard before it joined"
    assert dominant_hz(unit[8000:]) == pytest.approx(1800, abs=5)
    assert rms(caller[16000:20000]) == 0, "the caller's gap is not silent"
    assert rms(caller[20000:]) > 5000 and rms(caller[:16000]) > 5000


def test_files_play_after_each_flush_before_finalise(tmp_path: Path) -> None:
    writer = RecordingWriter(tmp_path, "rec-4", clock=FakeClock())
    for second in range(1, 3):
        for tick in range(50):
            frame = tone_frame(400, tick)
            writer.write(frame, {"caller": frame})
        writer.flush()
        for name in ("mixed.wav", "caller.wav"):
            with wave.open(str(writer.directory / name), "rb") as w:
                assert w.getnframes() == second * 8000
    writer.write(frame, {"caller": frame})  # one more tick, not flushed: not in the file yet
    with wave.open(str(writer.directory / "mixed.wav"), "rb") as w:
        assert w.getnframes() == 16000
    writer.finalise()


def test_odd_frames_are_fitted_and_write_after_finalise_is_ignored(tmp_path: Path) -> None:
    writer = RecordingWriter(tmp_path, "rec-5", clock=FakeClock(), read_only=False)
    writer.write(b"\x01\x00" * 100, {"caller": b"\x01\x00" * 200})  # 200 and 400 bytes
    info = writer.finalise()
    assert info.tracks["mixed"].frames == info.tracks["caller"].frames == 160
    writer.write(bytes(320), {"caller": bytes(320)})
    assert writer.state is WriterState.FINALISED
    with pytest.raises(RecordingStateError):
        writer.flush()
    with pytest.raises(RecordingStateError):
        writer.finalise()


def test_unsafe_ids_and_roles_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        RecordingWriter(tmp_path, "../etc", clock=FakeClock())
    writer = RecordingWriter(tmp_path, "rec-6", clock=FakeClock())
    with pytest.raises(ValueError):
        writer.write(bytes(320), {"caller": bytes(320), "../caller": bytes(320)})
    assert not list(tmp_path.rglob("*caller*"))
    writer.write(bytes(320), {"caller": bytes(320)})  # the refused tick left no trace
    info = writer.finalise()
    assert info.tracks["caller"].frames == info.tracks["mixed"].frames == 160
    assert info.lost_s == 0


def test_starting_a_recording_does_not_fsync_and_the_first_flush_makes_its_marker_durable(
    tmp_path: Path, mocker: MockerFixture
) -> None:
    """The writer is created on the event loop: an fsync there would stall every call's media.
    Its started.json must still reach the disk, with the first flush (the flusher's thread)."""
    synced: list[str] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real_fsync(fd)

    mocker.patch("os.fsync", side_effect=fsync)
    writer = RecordingWriter(tmp_path, "rec-7", clock=FakeClock())
    assert synced == []
    started = writer.directory / "started.json"
    assert json.loads(started.read_text())["recording_id"] == "rec-7"
    writer.write(bytes(320), {"caller": bytes(320)})
    writer.flush()
    assert {str(started), str(writer.directory), str(writer.directory.parent)} <= set(synced)
    writer.finalise()


def test_frames_in_role_order_record_the_same_files_over_long_flush_intervals(
    tmp_path: Path,
) -> None:
    """`write_frames` (the conference's tap API) and `write` give byte-identical tracks, also
    when parties join and leave and the flushes come late (the writer's buffers fill up)."""
    by_map = RecordingWriter(tmp_path, "by-map", clock=FakeClock())
    in_order = RecordingWriter(tmp_path, "in-order", clock=FakeClock())
    everyone = tuple(TONES)
    two = everyone[:2]
    for tick in range(400):
        roles = two if 60 <= tick < 200 else everyone  # the unit joins at 0, leaves, returns
        frames = [tone_frame(TONES[role], tick) for role in roles]
        mixed = mix(*frames)
        if tick in (30, 31):  # frames of other lengths are padded or cut, in either API
            frames[tick - 30] = frames[tick - 30][:100] if tick == 30 else frames[1] + b"\1" * 80
            mixed = mixed + b"\1" * 2 if tick == 31 else mixed
        by_map.write(mixed, dict(zip(roles, frames, strict=True)))
        in_order.write_frames(mixed, roles, frames)
        if tick in (57, 250):  # 1.2 s, then 3.9 s without a flush
            by_map.flush()
            in_order.flush()
    a, b = by_map.finalise(), in_order.finalise()
    assert sorted(a.tracks) == sorted(b.tracks) == ["caller", "dispatcher", "mixed", "unit"]
    for role in a.tracks:
        assert a.tracks[role].path.read_bytes() == b.tracks[role].path.read_bytes(), role
    unit = read_wav(b.tracks["unit"].path)
    assert rms(unit[60 * 160 : 200 * 160]) == 0 and rms(unit[200 * 160 :]) > 1000
