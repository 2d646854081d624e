"""A sealed recording of an ended bridge, written by the real RecordingWriter and stored as the
call manager stores it (calls.records), for tests of the recordings API and console."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

from calls.recording_rows import recording_finished, recording_started
from recordings import RecordingWriter
from storage.base import new_id, utcnow
from storage.engine import session_scope
from storage.models.call_records import Call, CallKind, CallState, Leg
from tests.recordings.rec_audio import mix, tone_frame

TONES = {"caller": 400.0, "dispatcher": 1000.0, "unit": 1800.0}


def seed_recorded_call(factory: Any, recordings_dir: Path, seconds: float = 2.0) -> tuple[str, str]:
    """(call id, recording id) of an ended bridge with `seconds` of three tones."""
    now = utcnow()
    with session_scope(factory) as s:
        call = Call(kind=CallKind.BRIDGE, state=CallState.ENDED, unit_code="L01",
                    incident_id="JQ-1", created_at=now - timedelta(seconds=seconds + 1),
                    connected_at=now - timedelta(seconds=seconds), ended_at=now,
                    end_reason="ended_by_request")  # fmt: skip
        call.legs += [Leg(role="caller", number="+8613812345678"),
                      Leg(role="dispatcher", number="2002"),
                      Leg(role="unit", number="2003")]  # fmt: skip
        s.add(call)
        s.flush()
        call_id = call.id
    rec_id = new_id()
    writer = RecordingWriter(recordings_dir, rec_id, fsync_interval_s=None)
    recording_started(factory, call_id, rec_id, str(writer.directory))
    for tick in range(int(seconds * 50)):
        frames = {role: tone_frame(hz, tick) for role, hz in TONES.items()}
        writer.write(mix(*frames.values()), frames)
    info = writer.finalise()
    recording_finished(factory, rec_id, recordings_dir, info, None)
    return call_id, rec_id
