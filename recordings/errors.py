"""Errors raised by the recordings package.

    RecordingError                    base: anything that went wrong with a recording
    ├── RecordingWriteError           a failure while writing/flushing (disk full, I/O error);
    │                                 the writer keeps audio in memory up to a bound and retries
    ├── RecordingFinaliseError        finalise() could not complete; carries the best info we have
    ├── RecordingStateError           a method called in the wrong state (flush after finalise)
    ├── WavFormatError                a file is not a PCM WAV we can read or repair
    ├── RecoveryError                 some crashed recordings could not be recovered
    └── ArchiveError                  the archive refused or failed a request
        ├── ArchiveKeyError           an invalid key (path traversal, absolute path, bad chars)
        ├── ArchiveNotFoundError      no object under that key
        └── RangeNotSatisfiableError  a byte range outside the object (HTTP 416)

Every error carries the recording id or key it is about, so the owner can log and store it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from recordings.info import RecordingInfo


class RecordingError(Exception):
    """Base class of every error of the recordings package."""

    def __init__(self, message: str, *, recording_id: str | None = None) -> None:
        super().__init__(message)
        self.recording_id = recording_id


class RecordingWriteError(RecordingError):
    """Writing a recording to disk failed; `errno` says why (ENOSPC: disk full)."""

    def __init__(
        self,
        message: str,
        *,
        recording_id: str | None = None,
        path: str | None = None,
        errno: int | None = None,
        buffered_s: float = 0.0,
        lost_s: float = 0.0,
    ) -> None:
        super().__init__(message, recording_id=recording_id)
        self.path = path
        self.errno = errno
        self.buffered_s = buffered_s  # audio held in memory, waiting for the disk
        self.lost_s = lost_s  # audio dropped because the memory bound was reached


class RecordingFinaliseError(RecordingError):
    """finalise() could not complete; `info` describes what is on disk (may be None)."""

    def __init__(
        self,
        message: str,
        *,
        recording_id: str | None = None,
        info: RecordingInfo | None = None,
    ) -> None:
        super().__init__(message, recording_id=recording_id)
        self.info = info


class RecordingStateError(RecordingError):
    """A writer method was called in a state that does not allow it."""


class WavFormatError(RecordingError):
    """A file is not a PCM WAV file we can read or repair."""

    def __init__(self, message: str, *, path: str | None = None) -> None:
        super().__init__(message)
        self.path = path


class RecoveryError(RecordingError):
    """Crash recovery failed for some directories; `recovered` holds the infos that worked."""

    def __init__(
        self,
        message: str,
        *,
        recovered: list[RecordingInfo],
        failures: list[tuple[str, str]],
    ) -> None:
        super().__init__(message)
        self.recovered = recovered
        self.failures = failures  # (directory, reason)


class ArchiveError(RecordingError):
    """The archive refused or failed a request about `key`."""

    def __init__(self, message: str, *, key: str | None = None) -> None:
        super().__init__(message)
        self.key = key


class ArchiveKeyError(ArchiveError):
    """The key is not acceptable (path traversal, absolute path, forbidden characters)."""


class ArchiveNotFoundError(ArchiveError):
    """No object is stored under the key."""


class RangeNotSatisfiableError(ArchiveError):
    """The requested byte range lies outside the object; answer HTTP 416."""

    status_hint = 416

    def __init__(self, message: str, *, key: str | None = None, size: int = 0) -> None:
        super().__init__(message, key=key)
        self.size = size  # for the Content-Range: bytes */size header
