"""The recordings archive: where finished recordings are kept and read back from.

`Archive` is the interface the rest of linkcall uses (the API streams audio through it, with
HTTP byte ranges); `FilesystemArchive` keeps objects as files under a data directory outside
the code (by default the same root the RecordingWriter writes to). Keys are relative POSIX paths
such as `2026/11/30/<recording_id>/mixed.wav`; anything that could leave the root (`..`, an
absolute path, a symlink pointing out) is refused with ArchiveKeyError. Stored objects are
evidence: `store` never overwrites.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol

from recordings.errors import (
    ArchiveError,
    ArchiveKeyError,
    ArchiveNotFoundError,
    RangeNotSatisfiableError,
)

log = logging.getLogger(__name__)

_PART_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
_RANGE_RE = re.compile(r"^bytes=(\d*)-(\d*)$")
CHUNK = 64 * 1024


@dataclass(frozen=True, slots=True)
class ByteRange:
    """An inclusive byte range, as in HTTP (`bytes=start-end`)."""

    start: int
    end: int

    @property
    def length(self) -> int:
        """Number of bytes in the range."""
        return self.end - self.start + 1

    def content_range(self, size: int) -> str:
        """The Content-Range header value of a 206 answer (RFC 9110 section 14.4)."""
        return f"bytes {self.start}-{self.end}/{size}"


def parse_range(header: str | None, size: int, *, key: str | None = None) -> ByteRange | None:
    """Interpret an HTTP Range header for an object of `size` bytes (RFC 9110 section 14.1.2).

    Returns None when the whole object should be sent (no header, a malformed one, or several
    ranges: a server may ignore Range, section 14.2). Raises RangeNotSatisfiableError (416)
    when the single range asked for lies outside the object.
    """
    if not header:
        return None
    match = _RANGE_RE.fullmatch(header.strip().replace(" ", ""))
    if match is None or match.group(1) == match.group(2) == "":
        return None
    first, last = match.groups()
    if first == "":  # suffix range: the last N bytes
        n = int(last)
        if n == 0 or size == 0:
            raise RangeNotSatisfiableError(f"empty suffix range {header!r}", key=key, size=size)
        return ByteRange(max(0, size - n), size - 1)
    start = int(first)
    end = size - 1 if last == "" else min(int(last), size - 1)
    if start >= size or (last != "" and int(last) < start):
        raise RangeNotSatisfiableError(f"range {header!r} outside {size} bytes", key=key, size=size)
    return ByteRange(start, end)


class Archive(Protocol):
    """Where recordings are kept. Implementations: FilesystemArchive (another store later)."""

    def store(self, key: str, source: Path) -> None:
        """Copy `source` into the archive under `key`; ArchiveError if the key is taken."""
        ...

    def exists(self, key: str) -> bool:
        """Whether an object is stored under `key`."""
        ...

    def size(self, key: str) -> int:
        """Size in bytes of the object under `key`."""
        ...

    def open(self, key: str) -> BinaryIO:
        """Open the object for reading (binary, seekable); the caller closes it."""
        ...

    def read(self, key: str, byte_range: ByteRange | None = None) -> Iterator[bytes]:
        """Yield the object's bytes (or only `byte_range`) in chunks, for streaming."""
        ...

    def resolve(self, key: str) -> Path:
        """A local path holding the object (for tools that need a file, e.g. sox)."""
        ...

    def list(self, prefix: str = "") -> list[str]:
        """Keys of all objects under `prefix` (a directory key such as `2026/11`), sorted."""
        ...


class FilesystemArchive:
    """Archive kept as plain files under `root` (a data directory outside the code)."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()

    def _path(self, key: str, *, allow_empty: bool = False) -> Path:
        """Map a key to a path inside the root, refusing every way out of it."""
        if allow_empty and key.strip("/") == "":
            return self.root
        parts = key.split("/")
        if key.startswith("/") or "\\" in key or "\0" in key:
            raise ArchiveKeyError(f"invalid archive key {key!r}", key=key)
        if not all(_PART_RE.fullmatch(p) and p not in (".", "..") for p in parts):
            raise ArchiveKeyError(f"invalid archive key {key!r}", key=key)
        path = self.root.joinpath(*parts)
        resolved = path.resolve()
        if resolved != self.root and self.root not in resolved.parents:
            raise ArchiveKeyError(f"archive key {key!r} leaves the archive", key=key)
        return resolved

    def key_of(self, path: Path) -> str:
        """The key of a file under the root (e.g. a track path from a RecordingInfo)."""
        resolved = path.resolve()
        if self.root not in resolved.parents:
            raise ArchiveKeyError(f"{path} is not inside the archive", key=str(path))
        return resolved.relative_to(self.root).as_posix()

    def _existing(self, key: str) -> Path:
        path = self._path(key)
        if not path.is_file():
            raise ArchiveNotFoundError(f"no archived object {key!r}", key=key)
        return path

    def store(self, key: str, source: Path) -> None:
        """Copy `source` to `key` atomically (temporary file, fsync, rename); never overwrite."""
        target = self._path(key)
        if target.exists():
            raise ArchiveError(f"archive key {key!r} already holds an object", key=key)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        try:
            with source.open("rb") as src, tmp.open("xb") as dst:
                shutil.copyfileobj(src, dst, CHUNK)
                dst.flush()
                os.fsync(dst.fileno())
            os.link(tmp, target)  # fails if the key appeared meanwhile: no overwrite
        except FileExistsError as exc:
            raise ArchiveError(f"archive key {key!r} already holds an object", key=key) from exc
        finally:
            tmp.unlink(missing_ok=True)
        log.info("archived %s", key)

    def exists(self, key: str) -> bool:
        """Whether a file is stored under `key` (an invalid key raises ArchiveKeyError)."""
        return self._path(key).is_file()

    def size(self, key: str) -> int:
        """Size in bytes of the file under `key`."""
        return self._existing(key).stat().st_size

    def open(self, key: str) -> BinaryIO:
        """Open the file under `key` for binary reading."""
        return self._existing(key).open("rb")

    def read(self, key: str, byte_range: ByteRange | None = None) -> Iterator[bytes]:
        """Yield the file's bytes, or those of `byte_range`, in chunks of up to 64 KiB.

        The key is checked and the file opened before the first chunk is asked for, so a
        missing object fails at the call, not in the middle of a response.
        """
        f = self.open(key)
        if byte_range is not None and byte_range.start >= os.fstat(f.fileno()).st_size:
            f.close()
            raise RangeNotSatisfiableError(f"range outside {key!r}", key=key)
        return self._chunks(f, byte_range)

    @staticmethod
    def _chunks(f: BinaryIO, byte_range: ByteRange | None) -> Iterator[bytes]:
        with f:
            remaining = -1
            if byte_range is not None:
                f.seek(byte_range.start)
                remaining = byte_range.length
            while remaining != 0:
                chunk = f.read(CHUNK if remaining < 0 else min(CHUNK, remaining))
                if not chunk:
                    return
                remaining -= len(chunk) if remaining > 0 else 0
                yield chunk

    def resolve(self, key: str) -> Path:
        """The path of the file under `key` (which must exist)."""
        return self._existing(key)

    def list(self, prefix: str = "") -> list[str]:
        """Keys of every file under the directory `prefix`, sorted; temporary files excluded."""
        base = self._path(prefix, allow_empty=True)
        if not base.is_dir():
            return []
        keys = [
            p.relative_to(self.root).as_posix()
            for p in base.rglob("*")
            if p.is_file() and not p.name.endswith(".tmp") and not p.is_symlink()
        ]
        return sorted(keys)
