"""Who seals a recording a dead process left unfinished, and the survivor's part of it.

A recording whose process died mid-call is sealed by `recordings.recover_directory` (headers
fixed to the audio on disk, SHA-256 sums, manifest, `interrupted`). Two kinds of node may try:
the node itself when it starts again (crash recovery over its recordings root), and a survivor
that declared it lost (calls/nodes.py) when the files are reachable from the survivor, i.e. the
nodes share their recordings storage. With shared storage a starting node also sees the
unfinished recordings other live nodes are writing right now.

So a recording is sealed only by whoever claims it in the database first: `claim` locks the
recording's row and takes it only while nobody has (`finalised_at` and `sha256` empty) and only
for the node expected to own it (the node itself at start-up; the lost node's name for a
survivor). A node that comes back after a survivor sealed its recording leaves it alone, and a
starting node never touches another live node's recording.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from calls.recording_rows import recording_finished
from recordings import info as layout
from recordings import recover_directory
from recordings.errors import RecordingError
from storage.engine import session_scope
from storage.models.call_records import Recording

log = logging.getLogger(__name__)


def claim(factory: sessionmaker[Session], recording_id: str, *, node: str, now: datetime) -> bool:
    """Take the sealing of `recording_id` for a recording made by `node`; False if another
    node made it or someone already sealed or claimed it. A recording with no row at all (its
    process died before the row was written) is taken: nobody else can know it."""
    with session_scope(factory) as s:
        rec = s.get(Recording, recording_id, with_for_update=True)
        if rec is None:
            return True
        if rec.sha256 is not None or rec.finalised_at is not None or rec.call.node != node:
            return False
        rec.finalised_at = now  # the claim; replaced by the sealing time once sealed
        return True


@dataclass(frozen=True, slots=True)
class LostRecording:
    """A lost node's recording nobody has sealed: its id, call and directory under the root."""

    recording_id: str
    call_id: str
    directory: str


def unsealed(factory: sessionmaker[Session], call_ids: list[str]) -> list[LostRecording]:
    """The recordings of `call_ids` that are not sealed and not claimed."""
    with session_scope(factory) as s:
        rows = s.scalars(
            select(Recording).where(
                Recording.call_id.in_(call_ids),
                Recording.sha256.is_(None),
                Recording.finalised_at.is_(None),
            )
        )
        return [LostRecording(r.id, r.call_id, r.directory) for r in rows]


def finalise_lost(
    factory: sessionmaker[Session],
    root: Path,
    lost: LostRecording,
    *,
    lost_node: str,
    me: str,
    now: datetime,
) -> str:
    """Seal a lost node's recording from shared storage if its files are under `root`; otherwise
    note on the row that they are not (with the size found, if any). Returns what was done."""
    directory = root / lost.directory
    if not (directory / layout.STARTED_FILE).is_file():
        _note(factory, lost.recording_id, f"node {lost_node} lost: the partial files are on its "
              f"disk, not reachable from node {me}", None)  # fmt: skip
        return "not reachable"
    if not claim(factory, lost.recording_id, node=lost_node, now=now):
        return "claimed by another node"
    try:
        if (directory / layout.MANIFEST_FILE).is_file():
            info = layout.read_manifest(directory)  # sealed, but the row was never written
        else:
            info = recover_directory(directory)
    except (OSError, ValueError, RecordingError) as exc:
        log.error("recording %s of lost node %s could not be sealed: %s",
                  lost.recording_id, lost_node, exc)  # fmt: skip
        _note(factory, lost.recording_id, f"node {lost_node} lost: sealing by node {me} "
              f"failed: {exc}", _size_so_far(directory), release=True)  # fmt: skip
        return f"failed: {type(exc).__name__}"
    recording_finished(
        factory, lost.recording_id, root, info,
        f"node {lost_node} lost: finalised by node {me} from shared storage",
    )  # fmt: skip
    log.warning("recording %s of lost node %s sealed by %s: %.1f s, sha256 %s", lost.recording_id,
                lost_node, me, info.duration_s, info.manifest_sha256)  # fmt: skip
    return "sealed"


def _size_so_far(directory: Path) -> int | None:
    try:
        return sum(p.stat().st_size for p in directory.glob("*.wav")) or None
    except OSError:
        return None


def _note(
    factory: sessionmaker[Session],
    recording_id: str,
    error: str,
    size: int | None,
    *,
    release: bool = False,
) -> None:
    """Say on the row why the recording is not sealed; `release` gives up the claim (the node
    itself may seal it when it starts again)."""
    with session_scope(factory) as s:
        rec = s.get(Recording, recording_id)
        if rec is not None:
            rec.error = error
            if size is not None:
                rec.size_bytes = size
            if release:
                rec.finalised_at = None
