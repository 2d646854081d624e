"""The WAV file format and the file I/O seam of the recordings package.

Our tracks are canonical PCM WAV files: a 44-byte header (RIFF, "fmt " chunk of 16 bytes,
"data" chunk) followed by 8 kHz, 16-bit, mono little-endian samples. The header's two size
fields (RIFF size at offset 4, data size at offset 40) are rewritten in place after each flush,
so a crash leaves a file whose header describes every flushed byte.

All writes go through `write_at`, which calls the module attribute `pwrite`: that is the single
seam where tests inject faults (ENOSPC, EIO) without touching the rest of the code.
"""

from __future__ import annotations

import hashlib
import logging
import os
import struct
import warnings
from dataclasses import dataclass
from pathlib import Path

from recordings.errors import WavFormatError

with warnings.catch_warnings():
    # stdlib audioop on 3.11/3.12 (deprecated, still shipped); audioop-lts on 3.13+.
    warnings.simplefilter("ignore", DeprecationWarning)
    import audioop

log = logging.getLogger(__name__)

SAMPLE_RATE = 8000
SAMPLE_WIDTH = 2  # bytes, signed 16-bit little-endian
CHANNELS = 1
FRAME_BYTES = 320  # one 20 ms media tick: 160 samples
BYTES_PER_SECOND = SAMPLE_RATE * SAMPLE_WIDTH * CHANNELS
HEADER_BYTES = 44
_MAX_DATA_BYTES = 0xFFFFFFFF - 36
_READ_CHUNK = 1 << 16

pwrite = os.pwrite  # the I/O seam (see module docstring)


def build_header(data_bytes: int) -> bytes:
    """Return the 44-byte header of an 8 kHz 16-bit mono PCM WAV holding `data_bytes` of audio."""
    block_align = CHANNELS * SAMPLE_WIDTH
    return (
        b"RIFF"
        + struct.pack("<I", 36 + data_bytes)
        + b"WAVEfmt "
        + struct.pack(
            "<IHHIIHH",
            16,
            1,  # WAVE_FORMAT_PCM
            CHANNELS,
            SAMPLE_RATE,
            SAMPLE_RATE * block_align,
            block_align,
            SAMPLE_WIDTH * 8,
        )
        + b"data"
        + struct.pack("<I", data_bytes)
    )


def write_at(fd: int, data: bytes | bytearray | memoryview, offset: int) -> None:
    """Write all of `data` at `offset`, continuing after partial writes; OSError propagates.

    A partial write followed by an error leaves the written prefix on disk; the caller learns
    how much from the exception's `written` attribute (set on the OSError) and keeps the rest.
    """
    view = memoryview(data)
    done = 0
    while done < len(view):
        try:
            n = pwrite(fd, view[done:], offset + done)
        except OSError as exc:
            exc.written = done  # type: ignore[attr-defined]
            raise
        if n <= 0:
            err = OSError(f"pwrite wrote {n} bytes")
            err.written = done  # type: ignore[attr-defined]
            raise err
        done += n


def write_sizes(fd: int, data_bytes: int) -> None:
    """Rewrite the header in place with new sizes: one syscall, no file growth (so it still
    works on a full disk). Only the RIFF and data size fields change."""
    write_at(fd, build_header(min(data_bytes, _MAX_DATA_BYTES)), 0)


@dataclass(frozen=True, slots=True)
class WavLayout:
    """Where the audio of a WAV file lies, and what its header claims."""

    sample_rate: int
    channels: int
    sample_width: int
    data_offset: int
    declared_data_bytes: int
    file_bytes: int

    @property
    def actual_data_bytes(self) -> int:
        """Bytes of audio really present after the data chunk header, in whole sample frames."""
        present = max(0, self.file_bytes - self.data_offset)
        block = self.channels * self.sample_width
        return present - present % block


def read_layout(path: Path) -> WavLayout:
    """Parse the RIFF chunks of `path` up to the data chunk; WavFormatError if it is not PCM WAV."""
    size = path.stat().st_size
    with path.open("rb") as f:
        head = f.read(12)
        if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            raise WavFormatError(f"not a RIFF/WAVE file: {path.name}", path=str(path))
        fmt: tuple[int, ...] | None = None
        while True:
            chunk = f.read(8)
            if len(chunk) < 8:
                raise WavFormatError(f"no data chunk in {path.name}", path=str(path))
            cid, clen = chunk[:4], struct.unpack("<I", chunk[4:])[0]
            if cid == b"data":
                if fmt is None:
                    raise WavFormatError(f"data before fmt in {path.name}", path=str(path))
                return WavLayout(fmt[2], fmt[1], fmt[5] // 8, f.tell(), clen, size)
            body = f.read(clen + (clen & 1))
            if cid == b"fmt ":
                if len(body) < 16:
                    raise WavFormatError(f"truncated fmt chunk in {path.name}", path=str(path))
                fmt = struct.unpack("<HHIIHH", body[:16])
                if fmt[0] != 1:
                    raise WavFormatError(f"not PCM (format {fmt[0]})", path=str(path))


def repair(path: Path) -> int:
    """Make the header of `path` match the audio on disk; return the data bytes kept.

    Trailing bytes that do not make a whole sample are cut off. A file shorter than its header
    (a crash right after creation) gets a fresh header with no audio.
    """
    if path.stat().st_size < HEADER_BYTES:
        log.warning("recording track %s has no complete header; writing an empty one", path)
        with path.open("r+b") as f:
            f.truncate(0)
            f.write(build_header(0))
        return 0
    layout = read_layout(path)
    data_bytes = layout.actual_data_bytes
    fd = os.open(path, os.O_RDWR)
    try:
        os.ftruncate(fd, layout.data_offset + data_bytes)
        if layout.data_offset == HEADER_BYTES:
            write_sizes(fd, data_bytes)
        else:  # a foreign layout: patch the data size field just before the audio
            write_at(fd, struct.pack("<I", data_bytes), layout.data_offset - 4)
            write_at(fd, struct.pack("<I", layout.data_offset - 8 + data_bytes), 4)
        os.fsync(fd)
    finally:
        os.close(fd)
    if data_bytes != layout.declared_data_bytes:
        log.info(
            "repaired %s: header said %d bytes, %d on disk",
            path,
            layout.declared_data_bytes,
            data_bytes,
        )
    return data_bytes


@dataclass(frozen=True, slots=True)
class TrackAnalysis:
    """What one pass over a track file measures: its hash, size and audio level."""

    sha256: str
    size_bytes: int
    frames: int  # sample frames (8000 per second)
    peak: int  # largest absolute sample value, 0..32768
    rms: float  # root mean square of all samples, 0..32768


def analyse(path: Path) -> TrackAnalysis:
    """Hash the whole file and measure its audio level in one read; the file is not modified."""
    layout = read_layout(path)
    digest = hashlib.sha256()
    peak = 0
    squares = 0.0
    frames = 0
    remaining = min(layout.declared_data_bytes, layout.actual_data_bytes)
    with path.open("rb") as f:
        header = f.read(layout.data_offset)
        digest.update(header)
        while True:
            chunk = f.read(_READ_CHUNK)
            if not chunk:
                break
            digest.update(chunk)
            audio = chunk[: max(0, remaining)]
            audio = audio[: len(audio) - len(audio) % SAMPLE_WIDTH]
            remaining -= len(chunk)
            if audio:
                n = len(audio) // SAMPLE_WIDTH
                peak = max(peak, audioop.max(audio, SAMPLE_WIDTH))
                squares += float(audioop.rms(audio, SAMPLE_WIDTH)) ** 2 * n
                frames += n
    rms = (squares / frames) ** 0.5 if frames else 0.0
    return TrackAnalysis(digest.hexdigest(), layout.file_bytes, frames, peak, rms)
