"""Crash recovery: finalise the recordings a crash left behind.

A recording directory with started.json but no manifest.json was never finalised: the process
died (SIGKILL, power loss, OOM) while the call was being recorded. Its WAV files hold everything
that was flushed, but their headers may lag behind the data by up to one flush, and the last
write may have stopped in the middle of a sample. `recover(root)` fixes each header to the audio
really on disk (cut to whole samples), then seals the recording with `interrupted=True`, its end
time estimated as start + the length of the audio.

Run it once at start-up, before accepting calls. With recordings storage shared by several
nodes, other nodes' writers are active under `root`: `claim(recording_id)` decides which
directories this node may seal (calls/lost_recordings.py claims them in the database).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from recordings import info as layout
from recordings import wavfile
from recordings.errors import RecordingError, RecoveryError
from recordings.info import RecordingInfo

log = logging.getLogger(__name__)


def unfinalised(root: Path) -> list[Path]:
    """Return the recording directories under `root` that have no finalisation marker."""
    if not root.is_dir():
        return []
    found = [
        started.parent
        for started in root.glob(f"*/*/*/*/{layout.STARTED_FILE}")
        if not (started.parent / layout.MANIFEST_FILE).exists()
    ]
    return sorted(found)


def recover_directory(directory: Path, *, read_only: bool = True) -> RecordingInfo:
    """Repair every track of one unfinalised recording and seal it as interrupted."""
    recording_id, started_at = layout.read_started(directory)
    for leftover in directory.glob("*.tmp"):
        leftover.unlink()  # a manifest or SHA256SUMS interrupted mid-write
    notes: list[str] = []
    lengths: dict[str, int] = {}
    for path in sorted(directory.glob("*.wav")):
        lengths[path.stem] = wavfile.repair(path)
    if len(set(lengths.values())) > 1:
        notes.append(
            "tracks end at different times after the crash: "
            + ", ".join(
                f"{role} {n / wavfile.BYTES_PER_SECOND:.2f} s" for role, n in lengths.items()
            )
        )
    notes.append("interrupted: finalised by crash recovery")
    return layout.seal(
        directory,
        recording_id=recording_id,
        started_at=started_at,
        ended_at=None,
        interrupted=True,
        errors=tuple(notes),
        read_only=read_only,
    )


def recover(
    root: Path, *, read_only: bool = True, claim: Callable[[str], bool] | None = None
) -> list[RecordingInfo]:
    """Finalise every recording under `root` left unfinalised by a crash; return their infos.

    With `claim`, only the directories whose recording id (the directory's name) it accepts.

    A directory that cannot be recovered (unreadable file, I/O error) is logged and skipped so
    the others are still recovered; then RecoveryError is raised, carrying both lists.
    """
    recovered: list[RecordingInfo] = []
    failures: list[tuple[Path, Exception]] = []
    for directory in unfinalised(root):
        if claim is not None and not claim(directory.name):
            log.info("recording in %s left alone: another node's, or sealed by one", directory)
            continue
        try:
            info = recover_directory(directory, read_only=read_only)
        except (OSError, ValueError, RecordingError) as exc:
            log.error("recording in %s could not be recovered: %s", directory, exc)
            failures.append((directory, exc))
            continue
        log.warning(
            "recording %s recovered after a crash: %.1f s in %d tracks",
            info.recording_id,
            info.duration_s,
            len(info.tracks),
        )
        recovered.append(info)
    if failures:
        first_dir, first_exc = failures[0]
        raise RecoveryError(
            f"{len(failures)} recording(s) could not be recovered, first {first_dir}: {first_exc}",
            recovered=recovered,
            failures=[(str(d), str(e)) for d, e in failures],
        ) from first_exc
    return recovered
