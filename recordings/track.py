"""TrackFile: one track of a recording, its in-memory buffers and its WAV file on disk.

The writer's hot path appends to `buf` and `sealed` (under the writer's lock); a flush moves
them to `backlog` and `drain()` writes the backlog at the end of the file, then
rewrites the header with the new size. A backlog segment is audio bytes, or an int: a run of
silence (the leading silence of a party that joined late, or a `Gap` standing in for audio
dropped while the disk was failing). Silence is written from a shared block of zeros, never
held in memory.
"""

from __future__ import annotations

import os
from collections import deque
from pathlib import Path

from recordings import wavfile

_ZEROS = memoryview(bytes(wavfile.BYTES_PER_SECOND))
BUFFER_BYTES = 56 * wavfile.FRAME_BYTES  # 1.12 s: a flush every second empties it first


class Gap(int):
    """Bytes of silence standing in for audio dropped while the disk was failing."""


Segment = bytes | bytearray | int  # audio bytes, or a count of bytes of silence


def _rest(seg: Segment, done: int) -> Segment:
    """What is left of a backlog segment after `done` bytes of it reached the disk."""
    if isinstance(seg, Gap):
        return Gap(seg - done)
    return seg - done if isinstance(seg, int) else seg[done:]


class TrackFile:
    """One track: `buf`/`sealed` belong to write(), `backlog` and the file to flush().

    `buf` is allocated once, `BUFFER_BYTES` long, and reused: the writer copies each tick's
    frame into it at its fill position (the same for every track of a writer) and copies out
    what it holds when it flushes or the buffer is full. A bytearray grown by appends instead
    is reallocated and copied whole about every other tick (issue 17).
    """

    __slots__ = ("backlog", "buf", "fd", "path", "role", "sealed", "silenced", "view", "written")

    def __init__(self, role: str, path: Path, leading_silence_bytes: int) -> None:
        self.role = role
        self.path = path
        self.buf = bytearray(BUFFER_BYTES)
        self.view = memoryview(self.buf)  # frames are stored through it: no temporary copy
        self.sealed: list[Segment] = [leading_silence_bytes] if leading_silence_bytes else []
        self.backlog: deque[Segment] = deque()
        self.fd: int | None = None
        self.written = 0  # audio bytes on disk after the header
        self.silenced = 0  # of which silence standing in for dropped audio (gaps)

    def open(self) -> int:
        """Create the file with an empty header, once; a failed creation leaves no file."""
        if self.fd is None:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            try:
                wavfile.write_at(fd, wavfile.build_header(0), 0)
            except OSError:
                os.close(fd)
                self.path.unlink()
                raise
            self.fd = fd
        return self.fd

    def drain(self) -> None:
        """Write the backlog at the end of the file; the header follows in any case.

        On an OSError what reached the disk (even part of a segment) is accounted for, the rest
        stays in the backlog for the next attempt, and the error propagates.
        """
        fd = self.open()
        try:
            while self.backlog:
                seg = self.backlog[0]
                data = _ZEROS[: min(seg, len(_ZEROS))] if isinstance(seg, int) else seg
                try:
                    wavfile.write_at(fd, data, wavfile.HEADER_BYTES + self.written)
                except OSError as exc:
                    self._account(seg, int(getattr(exc, "written", 0)))
                    raise
                self._account(seg, len(data))
                if not self.backlog[0]:
                    self.backlog.popleft()
        finally:
            wavfile.write_sizes(fd, self.written)

    def _account(self, seg: Segment, done: int) -> None:
        self.written += done
        if isinstance(seg, Gap):
            self.silenced += done
        self.backlog[0] = _rest(seg, done)

    def close(self, *, fsync: bool) -> None:
        """Set the final header size, optionally fdatasync, and close (creating the file if it
        never reached the disk, so every track of the call exists)."""
        try:
            fd = self.open()
            wavfile.write_sizes(fd, self.written)
            if fsync:
                os.fdatasync(fd)
        finally:
            if self.fd is not None:
                os.close(self.fd)
                self.fd = None

    def fdatasync(self) -> None:
        """Push the file's data to the disk (if the file exists yet)."""
        if self.fd is not None:
            os.fdatasync(self.fd)
