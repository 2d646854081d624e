"""RecordingFlusher: recordings reach the disk every second without the owner flushing by hand."""

from __future__ import annotations

import asyncio
import errno
import os
import wave
from pathlib import Path

import pytest
from pytest_mock import MockerFixture

from recordings import wavfile
from recordings.flusher import RecordingFlusher
from recordings.writer import RecordingWriter
from tests.recordings.rec_audio import tone_frame


def frames_on_disk(writer: RecordingWriter, role: str) -> int:
    with wave.open(str(writer.directory / f"{role}.wav"), "rb") as w:
        return w.getnframes()


async def test_flusher_writes_every_recording_and_reports_failures(
    tmp_path: Path, mocker: MockerFixture
) -> None:
    good = RecordingWriter(tmp_path, "good")
    bad = RecordingWriter(tmp_path, "bad")
    bad_prefix = str(bad.directory)
    real = os.pwrite

    def pwrite(fd: int, data: bytes | memoryview, offset: int) -> int:
        if os.readlink(f"/proc/self/fd/{fd}").startswith(bad_prefix) and offset >= 44:
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        return real(fd, data, offset)

    mocker.patch.object(wavfile, "pwrite", side_effect=pwrite)
    reported: list[tuple[str, int | None]] = []
    flusher = RecordingFlusher(
        lambda w, e: reported.append((w.recording_id, e.errno)), interval_s=0.1
    )
    flusher.add(good)
    flusher.add(bad)
    flusher.start()
    try:
        for tick in range(25):  # half a second of call at the media tick's pace
            frame = tone_frame(400, tick)
            good.write(frame, {"caller": frame})
            bad.write(frame, {"caller": frame})
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.25)
    finally:
        await flusher.stop()

    assert frames_on_disk(good, "caller") == 25 * 160, "the flusher did not write the audio"
    assert reported and set(reported) == {("bad", errno.EIO)}, "the failing disk was not reported"
    assert frames_on_disk(bad, "caller") == 0
    flusher.remove(good)
    info = good.finalise()
    assert info.tracks["caller"].frames == 25 * 160
    await flusher.stop()  # stopping twice is harmless


def test_flusher_refuses_intervals_longer_than_a_second() -> None:
    with pytest.raises(ValueError):
        RecordingFlusher(lambda w, e: None, interval_s=5)


async def test_an_unexpected_failure_neither_stops_the_flusher_nor_goes_unrecorded(
    tmp_path: Path, mocker: MockerFixture
) -> None:
    """One writer's flush fails with something other than an OSError (a bug, MemoryError), and
    the owner's error handler itself raises once: the flusher used to die silently, leaving
    every call of the process unflushed (30 s held in memory, then dropped). It goes on, the
    failure is reported and the writer records it in its manifest."""
    from recordings.track import TrackFile

    bad = RecordingWriter(tmp_path, "odd")
    good = RecordingWriter(tmp_path, "fine")
    real_drain = TrackFile.drain
    failures = {"left": 1}

    def drain(track: TrackFile) -> None:
        if str(track.path).startswith(str(bad.directory)) and failures["left"]:
            failures["left"] -= 1
            raise RuntimeError("unexpected")
        real_drain(track)

    mocker.patch.object(TrackFile, "drain", autospec=True, side_effect=drain)
    reported: list[str] = []

    def on_error(w: RecordingWriter, e: Exception) -> None:
        reported.append(w.recording_id)
        if len(reported) == 1:
            raise RuntimeError("the handler failed too")

    flusher = RecordingFlusher(on_error, interval_s=0.1)
    flusher.add(bad)  # first: its failure comes before the good writer's flush
    flusher.add(good)
    flusher.start()
    try:
        for tick in range(25):
            frame = tone_frame(400, tick)
            good.write(frame, {"caller": frame})
            bad.write(frame, {"caller": frame})
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.25)
    finally:
        await flusher.stop()
    assert reported == ["odd"]
    assert frames_on_disk(good, "caller") == 25 * 160, "the flusher stopped flushing"
    assert frames_on_disk(bad, "caller") == 25 * 160, "the failed writer never caught up"
    flusher.remove(bad)
    info = bad.finalise()
    assert info.lost_s == 0
    assert any("unexpected" in e for e in info.errors), info.errors
    assert any("recovered" in e for e in info.errors), info.errors
