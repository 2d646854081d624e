"""Evidence-grade call recordings: incremental WAV tracks, sealing, crash repair, health.

The public surface, re-exported here (see docs/recordings.md):

- RecordingWriter: the media tap (`write`), `flush()` every second, `finalise() -> RecordingInfo`
- RecordingFlusher: one background task flushing every writer each second (worker thread)
- recover(root): finalise recordings a crash left behind (interrupted=True)
- Archive / FilesystemArchive / parse_range: read recordings back, with HTTP byte ranges
- check(): the health check (missing, hash mismatch, silent, too short)
- the errors, rooted at RecordingError
"""

from recordings.archive import Archive, ByteRange, FilesystemArchive, parse_range
from recordings.errors import (
    ArchiveError,
    ArchiveKeyError,
    ArchiveNotFoundError,
    RangeNotSatisfiableError,
    RecordingError,
    RecordingFinaliseError,
    RecordingStateError,
    RecordingWriteError,
    RecoveryError,
    WavFormatError,
)
from recordings.flusher import RecordingFlusher
from recordings.health import Finding, HealthReport, Problem, check
from recordings.info import RecordingInfo, TrackInfo, read_manifest, recording_directory
from recordings.recovery import recover, recover_directory, unfinalised
from recordings.writer import RecordingWriter, WriterState

__all__ = [
    "Archive",
    "ArchiveError",
    "ArchiveKeyError",
    "ArchiveNotFoundError",
    "ByteRange",
    "FilesystemArchive",
    "Finding",
    "HealthReport",
    "Problem",
    "RangeNotSatisfiableError",
    "RecordingError",
    "RecordingFinaliseError",
    "RecordingFlusher",
    "RecordingInfo",
    "RecordingStateError",
    "RecordingWriteError",
    "RecordingWriter",
    "RecoveryError",
    "TrackInfo",
    "WavFormatError",
    "WriterState",
    "check",
    "parse_range",
    "read_manifest",
    "recording_directory",
    "recover",
    "recover_directory",
    "unfinalised",
]
