"""Who seals a dead node's unfinished recording (calls/lost_recordings.py), on SQLite and
PostgreSQL: with shared recordings storage the survivor seals it and the node, when it comes
back, leaves it alone; a starting node never seals another live node's recording; without the
files the row says where they are."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from calls import lost_recordings
from calls.interrupted_calls import mark_interrupted
from calls.recording_rows import recording_started
from calls.records import NewCall, insert_call
from recordings.info import MANIFEST_FILE, read_manifest
from recordings.recovery import recover, unfinalised
from recordings.writer import RecordingWriter
from storage.engine import make_engine, make_session_factory, session_scope
from storage.models.call_records import CallKind, Recording, RecordingState
from tests.recordings.rec_audio import tone_frame

NOW = datetime(2026, 12, 6, 8, 0, tzinfo=UTC)


@pytest.fixture
def factory(migrated_url: str) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(migrated_url)
    yield make_session_factory(engine)
    engine.dispose()


def recording_in_progress(
    factory: sessionmaker[Session], root: Path, node: str, seconds: float = 2.0
) -> tuple[str, str, Path]:
    """A bridge on `node` whose recording has `seconds` of audio flushed and was never
    finalised (its process died); returns call id, recording id and directory."""
    call_id = insert_call(
        factory,
        NewCall(CallKind.BRIDGE, "test", node, parties=(("caller", "3001"), ("unit", "5001"))),
    )
    writer = RecordingWriter(root, f"rec-{call_id[:12]}")
    for tick in range(int(seconds * 50)):
        caller, unit = tone_frame(400, tick), tone_frame(1800, tick)
        writer.write(caller, {"caller": caller, "unit": unit})
    writer.flush()
    directory = writer.directory
    recording_started(factory, call_id, writer.recording_id, str(directory.relative_to(root)))
    return call_id, writer.recording_id, directory


def row(factory: sessionmaker[Session], recording_id: str) -> Recording:
    with session_scope(factory) as s:
        rec = s.get(Recording, recording_id)
        assert rec is not None
        s.expunge(rec)
        return rec


def test_survivor_seals_a_lost_node_s_recording_and_the_node_leaves_it_alone_on_return(
    factory: sessionmaker[Session], tmp_path: Path
) -> None:
    root = tmp_path / "shared-recordings"
    call_id, rid, directory = recording_in_progress(factory, root, "node-a")

    # node B starts while A is alive: A's unfinished recording is not B's to seal
    assert not lost_recordings.claim(factory, rid, node="node-b", now=NOW)
    assert (
        recover(root, claim=partial(lost_recordings.claim, factory, node="node-b", now=NOW)) == []
    )
    assert unfinalised(root) == [directory]

    # A is lost: B ends its call, then seals the recording from the shared storage
    ended = mark_interrupted(factory, "node-a", [], root, NOW, reason="node_lost")
    assert ended.call_ids == [call_id]
    lost = lost_recordings.unsealed(factory, [call_id])
    assert [x.recording_id for x in lost] == [rid]
    outcome = lost_recordings.finalise_lost(
        factory, root, lost[0], lost_node="node-a", me="node-b", now=NOW
    )
    assert outcome == "sealed"
    sealed = row(factory, rid)
    assert sealed.state is RecordingState.INTERRUPTED
    info = read_manifest(directory)
    assert sealed.sha256 == info.manifest_sha256
    assert sealed.sha256 == hashlib.sha256((directory / "SHA256SUMS").read_bytes()).hexdigest()
    for role, track in sealed.tracks.items():
        data = (root / track["file"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == track["sha256"], role
    assert 1.9 <= (sealed.duration_s or 0) <= 2.1
    assert "finalised by node node-b" in (sealed.error or "")
    manifest = (directory / MANIFEST_FILE).read_bytes()

    # A comes back with the same storage: nothing left for it to seal, nothing re-sealed
    assert lost_recordings.unsealed(factory, [call_id]) == []
    assert not lost_recordings.claim(factory, rid, node="node-a", now=NOW)
    claim_a = partial(lost_recordings.claim, factory, node="node-a", now=NOW)
    assert recover(root, claim=claim_a) == []
    assert (directory / MANIFEST_FILE).read_bytes() == manifest
    assert row(factory, rid).sha256 == sealed.sha256


def test_a_recording_is_claimed_once(factory: sessionmaker[Session], tmp_path: Path) -> None:
    root = tmp_path / "recordings"
    _call_id, rid, _directory = recording_in_progress(factory, root, "node-a", seconds=0.2)
    assert lost_recordings.claim(factory, rid, node="node-a", now=NOW)
    assert not lost_recordings.claim(factory, rid, node="node-a", now=NOW)


def test_without_the_files_the_recording_stays_interrupted_and_says_where_they_are(
    factory: sessionmaker[Session], tmp_path: Path
) -> None:
    call_id, rid, _directory = recording_in_progress(factory, tmp_path / "a-disk", "node-a")
    mark_interrupted(factory, "node-a", [], tmp_path / "b-disk", NOW, reason="node_lost")
    [lost] = lost_recordings.unsealed(factory, [call_id])
    outcome = lost_recordings.finalise_lost(
        factory, tmp_path / "b-disk", lost, lost_node="node-a", me="node-b", now=NOW
    )
    assert outcome == "not reachable"
    rec = row(factory, rid)
    assert (rec.state, rec.sha256, rec.finalised_at) == (RecordingState.INTERRUPTED, None, None)
    assert "not reachable from node node-b" in (rec.error or "")
    # so node A, back with its own disk, still seals it at start-up
    claim_a = partial(lost_recordings.claim, factory, node="node-a", now=NOW)
    assert [i.recording_id for i in recover(tmp_path / "a-disk", claim=claim_a)] == [rid]
