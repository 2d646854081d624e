"""Health check: a supervisor learns which recordings are missing, altered, silent or short."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest

from recordings.health import Problem, check
from recordings.info import RecordingInfo
from recordings.writer import RecordingWriter
from tests.recordings.rec_audio import tone_frame

START = datetime(2026, 11, 30, 3, 15, 0, tzinfo=UTC)


def record(root: Path, rid: str, seconds: float, unit_silent: bool = False) -> RecordingInfo:
    """Record a caller (400 Hz) and a unit (1800 Hz, or digital silence) for `seconds`."""
    writer = RecordingWriter(root, rid, clock=lambda: START, read_only=False)
    for tick in range(int(seconds * 50)):
        caller = tone_frame(400, tick)
        unit = bytes(320) if unit_silent else tone_frame(1800, tick, amplitude=0.01)
        writer.write(caller, {"caller": caller, "unit": unit})
        if tick % 50 == 49:
            writer.flush()
    return writer.finalise()


def test_a_good_recording_is_ok(tmp_path: Path) -> None:
    info = record(tmp_path, "good", 4.0)
    report = check(info, expected_duration_s=4.2)
    assert report.ok, report.findings
    assert report.duration_s == pytest.approx(4.0)
    assert check(info.directory, expected_duration_s=4.0).ok  # from the manifest alone


def test_tampered_track_is_a_hash_mismatch(tmp_path: Path) -> None:
    info = record(tmp_path, "tampered", 2.0)
    path = info.tracks["caller"].path
    body = bytearray(path.read_bytes())
    body[1000] ^= 0x01  # one bit of one sample
    path.write_bytes(bytes(body))
    report = check(info.directory, expected_duration_s=2.0)
    assert report.has(Problem.HASH_MISMATCH, "caller")
    assert not report.has(Problem.HASH_MISMATCH, "unit") and not report.ok


def test_missing_files_and_unfinalised_directories_are_flagged(tmp_path: Path) -> None:
    info = record(tmp_path, "gone", 2.0)
    info.tracks["unit"].path.unlink()
    assert check(info, 2.0).has(Problem.MISSING_FILE, "unit")
    shutil.rmtree(info.directory)
    assert check(info, 2.0).has(Problem.MISSING_FILE)
    assert check(info.directory, 2.0).has(Problem.MISSING_FILE)
    writer = RecordingWriter(tmp_path, "open", clock=lambda: START)
    writer.write(bytes(320), {"caller": bytes(320)})
    writer.flush()
    assert check(writer.directory).has(Problem.MISSING_MANIFEST)


def test_silent_party_track_is_flagged_but_a_quiet_one_is_not(tmp_path: Path) -> None:
    silent = check(record(tmp_path, "silent", 2.0, unit_silent=True), 2.0)
    assert silent.has(Problem.SILENT_TRACK, "unit")
    assert not silent.has(Problem.SILENT_TRACK, "caller")
    quiet = check(record(tmp_path, "quiet", 2.0), 2.0)  # unit at -43 dBFS: quiet, not silent
    assert not quiet.has(Problem.SILENT_TRACK)


@pytest.mark.parametrize(
    ("recorded_s", "call_s", "short"),
    [(10.0, 10.5, False), (8.0, 10.0, True), (57.0, 60.0, True), (59.0, 60.0, False)],
)
def test_recording_much_shorter_than_the_call_is_flagged(
    tmp_path: Path, recorded_s: float, call_s: float, short: bool
) -> None:
    report = check(record(tmp_path, "len", recorded_s), expected_duration_s=call_s)
    assert report.has(Problem.TOO_SHORT) is short
