"""What a finished recording is: its tracks, hashes and times; the on-disk layout and manifest.

Layout of one recording (one directory per call, one mono WAV per track):

    <root>/YYYY/MM/DD/<recording_id>/      date of the start, in UTC
        started.json     written when the recording starts (id, start time)
        mixed.wav        what the call sounded like: every party mixed
        caller.wav ...   one file per party role, all aligned from the start of the recording
        SHA256SUMS       `sha256sum -c SHA256SUMS` verifies the set with standard tools
        manifest.json    written last, atomically: the finalisation marker

A directory with started.json but no manifest.json is a recording left by a crash.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from recordings import wavfile

log = logging.getLogger(__name__)

STARTED_FILE = "started.json"
MANIFEST_FILE = "manifest.json"
SUMS_FILE = "SHA256SUMS"
MIXED = "mixed"
_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_ROLE_RE = re.compile(r"^[a-z][a-z0-9_]{0,31}$")


def check_recording_id(recording_id: str) -> str:
    """Return `recording_id` if it is safe as a directory name, else raise ValueError."""
    if not _ID_RE.fullmatch(recording_id) or ".." in recording_id:
        raise ValueError(f"invalid recording id {recording_id!r}")
    return recording_id


def check_role(role: str) -> str:
    """Return `role` if it is safe as a file name (lowercase word), else raise ValueError."""
    if not _ROLE_RE.fullmatch(role):
        raise ValueError(f"invalid track role {role!r}")
    return role


def recording_directory(root: Path, recording_id: str, started_at: datetime) -> Path:
    """Return `<root>/YYYY/MM/DD/<recording_id>` for a recording started at `started_at`."""
    day = started_at.astimezone(UTC)
    return root / f"{day:%Y}" / f"{day:%m}" / f"{day:%d}" / check_recording_id(recording_id)


def _dbfs(level: float) -> float:
    return 20 * math.log10(level / 32768) if level > 0 else -math.inf


@dataclass(frozen=True, slots=True)
class TrackInfo:
    """One finalised track file: where it is, its SHA-256 and its audio figures."""

    role: str
    path: Path
    sha256: str
    size_bytes: int
    frames: int  # sample frames, 8000 per second
    peak: int  # largest absolute sample, 0..32768
    rms: float  # RMS of all samples, 0..32768

    @property
    def duration_s(self) -> float:
        """Length of the audio in seconds."""
        return self.frames / wavfile.SAMPLE_RATE

    @property
    def peak_dbfs(self) -> float:
        """Peak level in dB relative to full scale (-inf for digital silence)."""
        return _dbfs(self.peak)

    @property
    def rms_dbfs(self) -> float:
        """RMS level in dB relative to full scale (-inf for digital silence)."""
        return _dbfs(self.rms)


@dataclass(frozen=True)
class RecordingInfo:
    """A finalised recording: what the database stores and the health check verifies."""

    recording_id: str
    directory: Path
    tracks: Mapping[str, TrackInfo]
    duration_s: float
    started_at: datetime
    ended_at: datetime
    interrupted: bool  # finalised by crash recovery, not by its writer
    manifest_sha256: str  # SHA-256 of the SHA256SUMS file: one hash for the whole set
    lost_s: float = 0.0  # audio replaced by silence or missing because the disk failed
    errors: tuple[str, ...] = field(default=())  # what went wrong while recording, if anything

    def to_json(self) -> dict[str, Any]:
        """Return a JSON-serialisable dict (paths relative to the directory)."""
        return {
            "recording_id": self.recording_id,
            "started_at": self.started_at.isoformat(),
            "ended_at": self.ended_at.isoformat(),
            "duration_s": self.duration_s,
            "interrupted": self.interrupted,
            "manifest_sha256": self.manifest_sha256,
            "lost_s": self.lost_s,
            "errors": list(self.errors),
            "format": {"sample_rate": wavfile.SAMPLE_RATE, "sample_width": 2, "channels": 1},
            "tracks": {
                role: {
                    "file": t.path.name,
                    "sha256": t.sha256,
                    "size_bytes": t.size_bytes,
                    "frames": t.frames,
                    "duration_s": t.duration_s,
                    "peak": t.peak,
                    "rms": round(t.rms, 3),
                }
                for role, t in sorted(self.tracks.items())
            },
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any], directory: Path) -> RecordingInfo:
        """Rebuild the info stored in a manifest found in `directory`."""
        tracks = {
            check_role(role): TrackInfo(
                role=role,
                path=_track_path(directory, str(t["file"])),
                sha256=str(t["sha256"]),
                size_bytes=int(t["size_bytes"]),
                frames=int(t["frames"]),
                peak=int(t["peak"]),
                rms=float(t["rms"]),
            )
            for role, t in data["tracks"].items()
        }
        return cls(
            recording_id=data["recording_id"],
            directory=directory,
            tracks=tracks,
            duration_s=float(data["duration_s"]),
            started_at=datetime.fromisoformat(data["started_at"]),
            ended_at=datetime.fromisoformat(data["ended_at"]),
            interrupted=bool(data["interrupted"]),
            manifest_sha256=data["manifest_sha256"],
            lost_s=float(data.get("lost_s", 0.0)),
            errors=tuple(data.get("errors", ())),
        )


def _track_path(directory: Path, name: str) -> Path:
    """Resolve a manifest's file name inside `directory`, refusing anything that leaves it."""
    if Path(name).name != name or name in ("", ".", "..") or not name.endswith(".wav"):
        raise ValueError(f"manifest names an unsafe file {name!r}")
    return directory / name


def write_started(
    directory: Path, recording_id: str, started_at: datetime, *, durable: bool = True
) -> None:
    """Create the recording directory and its started.json marker.

    `durable=False` leaves out the fsyncs: the marker then survives a crash of the process (it
    is in the kernel) but not yet a power loss, until `sync_started` (the writer's first flush,
    in the flusher's thread: the writer is created on the event loop, where an fsync would
    stall the media tick and every other call). An unreadable marker is tolerated by recovery.
    """
    directory.mkdir(parents=True, exist_ok=False)
    body = json.dumps({"recording_id": recording_id, "started_at": started_at.isoformat()})
    if not durable:
        (directory / STARTED_FILE).write_bytes(body.encode())
        return
    _write_durably(directory / STARTED_FILE, body.encode())
    fsync_directory(directory.parent)


def sync_started(directory: Path) -> None:
    """fsync started.json, the recording directory and its parent (see `write_started`)."""
    fd = os.open(directory / STARTED_FILE, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    fsync_directory(directory)
    fsync_directory(directory.parent)


def read_started(directory: Path) -> tuple[str, datetime]:
    """Return (recording_id, started_at) from started.json; fall back to the directory itself."""
    try:
        data = json.loads((directory / STARTED_FILE).read_text())
        return str(data["recording_id"]), datetime.fromisoformat(data["started_at"])
    except (OSError, ValueError, KeyError) as exc:
        log.warning("recording %s: started.json unreadable (%s); using mtime", directory, exc)
        mtime = datetime.fromtimestamp(directory.stat().st_mtime, UTC)
        return directory.name, mtime


def read_manifest(directory: Path) -> RecordingInfo:
    """Load the RecordingInfo of a finalised recording directory."""
    data = json.loads((directory / MANIFEST_FILE).read_text())
    return RecordingInfo.from_json(data, directory)


def seal(
    directory: Path,
    *,
    recording_id: str,
    started_at: datetime,
    ended_at: datetime | None,
    interrupted: bool,
    lost_s: float = 0.0,
    errors: tuple[str, ...] = (),
    read_only: bool = True,
) -> RecordingInfo:
    """Hash and measure every track in `directory`, write SHA256SUMS and the manifest.

    `ended_at=None` (crash recovery) means start plus the longest track. The WAV headers must
    already be correct. With `read_only` the track files and manifest lose their write bits.
    """
    tracks: dict[str, TrackInfo] = {}
    for path in sorted(directory.glob("*.wav")):
        role = path.stem
        a = wavfile.analyse(path)
        tracks[role] = TrackInfo(role, path, a.sha256, a.size_bytes, a.frames, a.peak, a.rms)
    duration = max((t.duration_s for t in tracks.values()), default=0.0)
    if MIXED in tracks:
        duration = tracks[MIXED].duration_s
    sums = "".join(f"{t.sha256}  {t.path.name}\n" for t in sorted(tracks.values(), key=_name))
    sums_bytes = sums.encode()
    info = RecordingInfo(
        recording_id=recording_id,
        directory=directory,
        tracks=tracks,
        duration_s=duration,
        started_at=started_at,
        ended_at=ended_at or started_at + timedelta(seconds=duration),
        interrupted=interrupted,
        manifest_sha256=hashlib.sha256(sums_bytes).hexdigest(),
        lost_s=lost_s,
        errors=errors,
    )
    _write_durably(directory / SUMS_FILE, sums_bytes)
    _write_durably(directory / MANIFEST_FILE, json.dumps(info.to_json(), indent=2).encode())
    fsync_directory(directory)
    if read_only:
        for path in [*(t.path for t in tracks.values()), directory / SUMS_FILE]:
            path.chmod(0o444)
        (directory / MANIFEST_FILE).chmod(0o444)
    return info


def _name(track: TrackInfo) -> str:
    return track.path.name


def _write_durably(path: Path, body: bytes) -> None:
    """Write `body` to `path` atomically: temporary file, fsync, rename."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        wavfile.write_at(fd, body, 0)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def fsync_directory(directory: Path) -> None:
    """fsync a directory so that file creations and renames in it survive a power loss."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
