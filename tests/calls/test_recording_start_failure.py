"""A call whose recording cannot even start (the recordings directory cannot be created: a
full, read-only or broken disk) keeps talking, and the failure is on record: a `recordings`
row `failed` with the error, a `recording_failed` problem counted, the events published (SQLite
and PostgreSQL). Before, a bridge only logged 'StartRecording failed' and had no recording row
at all, so nothing but the log said the call was never recorded."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from calls.hooks import CallHooks
from calls.media_workers.surface import Media
from calls.records import CallRecords
from calls.runner_media import FlowMedia
from calls.stats import CallStats
from storage.engine import make_engine, make_session_factory, session_scope
from storage.models.call_records import Call, CallKind, CallState, Recording, RecordingState


@pytest.fixture
def factory(migrated_url: str) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(migrated_url)
    yield make_session_factory(engine)
    engine.dispose()


class Conference:
    def __init__(self) -> None:
        self.roles: dict[str, Any] = {}
        self.taps: list[Any] = []

    def add_tap(self, tap: Any) -> None:
        self.taps.append(tap)


class FakeMedia:
    def __init__(self) -> None:
        self.conferences: list[Conference] = []

    def create_conference(self, name: str) -> Conference:
        self.conferences.append(Conference())
        return self.conferences[-1]


async def test_a_recording_that_cannot_start_is_stored_failed_with_its_error(
    factory: sessionmaker[Session], tmp_path: Path
) -> None:
    root = tmp_path / "recordings"
    root.write_text("")  # a file where the recordings directory should be: mkdir fails
    with session_scope(factory) as s:
        call = Call(kind=CallKind.BRIDGE, state=CallState.CONNECTED, node="node-a")
        s.add(call)
        s.flush()
        call_id = call.id
    records = CallRecords(factory, root)
    events: list[tuple[str, dict[str, Any]]] = []
    stats = CallStats()
    hooks = CallHooks(records, lambda t, d: events.append((t, d)), call_id, stats=stats)
    media = FakeMedia()
    flow = FlowMedia(cast(Media, media), hooks, lambda: call_id, recordings_root=root,
                     recording_id=call_id)  # fmt: skip
    try:
        flow.start_recording("main")  # the call goes on: nothing raised
        flow.start_recording("main")  # not retried: one row, one failure
        await flow.stop_recording()
        await records.flushed()
    finally:
        await records.close(5)
    assert media.conferences[0].taps == []
    with session_scope(factory) as s:
        rows = list(s.scalars(select(Recording).where(Recording.call_id == call_id)))
        assert [(r.id, r.state) for r in rows] == [(call_id, RecordingState.FAILED)]
        assert rows[0].error is not None and "could not start" in rows[0].error
        assert rows[0].finalised_at is not None
    assert stats.recording_problems["recording_failed"] == 1
    assert [t for t, _ in events] == ["recording.started", "recording.finished"]
    assert "could not start" in events[-1][1]["error"]
