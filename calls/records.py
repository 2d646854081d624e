"""The call records: calls, legs, attempts and recordings in the database.

The functions are synchronous SQL; `CallRecords` (at the end) binds them to one writer thread
so the event loop and the media tick never wait on SQL. The flows' snapshots, SIP Call-IDs and
dialogs are written as Core statements of what changed (`calls.record_rows`); the rarer writes
(a recording finished, crash recovery, an inbound call becoming a bridge) through the ORM."""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Hashable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Connection, select
from sqlalchemy.orm import Session, sessionmaker

from callflows.bridge import BridgeSnapshot
from callflows.inbound import InboundSnapshot
from callflows.ivr import KeyPromptResult, KeyPromptState
from calls.record_rows import CallRows, insert_recording, recording_of, update_recording
from calls.record_writer import BatchWriter, Write
from recordings import RecordingInfo, check, read_manifest
from recordings.errors import RecordingError
from recordings.info import MANIFEST_FILE
from storage.base import utcnow
from storage.engine import session_scope
from storage.models.call_records import (
    Call,
    CallKind,
    CallState,
    Leg,
    Recording,
    RecordingState,
)
from telephony.sip.orphans import PENDING_INVITE

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class NewCall:
    """What is known of a call before anything is dialled."""

    kind: CallKind
    created_by: str
    node: str
    idempotency_key: str | None = None
    incident_id: str | None = None
    unit_code: str | None = None
    request: dict[str, Any] | None = None
    parties: tuple[tuple[str, str | None], ...] = ()  # (role, first number)
    labels: dict[str, str] | None = None  # number -> who answers it (duty list)


def insert_call(factory: sessionmaker[Session], new: NewCall) -> str:
    """Store a new call with one leg row per party; returns its id."""
    with session_scope(factory) as s:
        return add_call(s, new).id


def add_call(s: Session, new: NewCall) -> Call:
    """Insert a new call and its leg rows in `s` (flushed, not committed); its collections are
    loaded (empty attempts and recordings), so reading them back sends no query."""
    call = Call(
        kind=new.kind,
        created_by=new.created_by,
        node=new.node,
        idempotency_key=new.idempotency_key,
        incident_id=new.incident_id,
        unit_code=new.unit_code,
        request=new.request or {},
        attempts=[],
        recordings=[],
    )
    for role, number in new.parties:
        call.legs.append(Leg(role=role, number=number, state="waiting"))
    s.add(call)
    s.flush()
    return call


def call_by_idempotency_key(s: Session, key: str) -> Call | None:
    """The call created with this Idempotency-Key, if any (in the caller's session)."""
    return s.scalar(select(Call).where(Call.idempotency_key == key))


def _save_bridge_snapshot(
    conn: Connection, rows: CallRows, call_id: str, snap: BridgeSnapshot, labels: dict[str, str]
) -> None:
    """Mirror the flow's snapshot into the call, leg and attempt rows (what changed only)."""
    known = rows.of(conn, call_id)
    if known is None:
        log.error("snapshot for unknown call %s", call_id)
        return
    call = {"state": CallState(snap.state.value), "connected_at": snap.connected_at,
            "ended_at": snap.ended_at, "end_reason": snap.end_reason}  # fmt: skip
    rows.put_call(conn, call_id, known, call)
    for party in snap.parties:
        if party.state.value == "absent":  # never dialled (or not carried on after a crash)
            continue
        role = party.role.value
        old = known.legs.get(role)
        leg = {"number": party.number or (old["number"] if old is not None else None),
               "state": party.state.value, "muted": party.muted, "held": party.held,
               "connected_at": party.connected_at, "ended_at": party.ended_at,
               "end_reason": party.end_reason}  # fmt: skip
        rows.put_leg(conn, call_id, known, role, leg)
        for att in party.attempts:
            new = {"role": role, "number": att.number, "label": labels.get(att.number),
                   "started_at": att.started_at}  # fmt: skip
            outcome = {"result": att.result, "sip_status": att.sip_status,
                       "ended_at": att.ended_at, "extension": att.extension,
                       "extension_sent_at": att.extension_sent_at,
                       "confirmed_at": att.confirmed_at}  # fmt: skip
            rows.put_attempt(conn, call_id, known, att.leg_id, outcome, new)
    if snap.state.value in ("ended", "failed"):
        rows.forget((call_id,))  # its last snapshot: nothing more to compare with


def _save_key_prompt(
    conn: Connection, rows: CallRows, call_id: str, result: KeyPromptResult
) -> None:
    """Mirror an IVR call (survey, duty check) into its call, leg and attempt rows."""
    known = rows.of(conn, call_id)
    if known is None:
        log.error("IVR result for unknown call %s", call_id)
        return
    done = result.state is KeyPromptState.DONE
    call = dict(known.call)
    if result.answered_at is not None:
        call["connected_at"] = result.answered_at
    if done:
        call["state"] = CallState.ENDED if result.answered_at else CallState.FAILED
        call["ended_at"] = result.ended_at
        call["end_reason"] = result.outcome.value if result.outcome else None
    elif result.answered_at is not None:
        call["state"] = CallState.CONNECTED
    rows.put_call(conn, call_id, known, call)
    role = next(iter(known.legs), None)  # its only leg (the first, by id)
    if role is not None:
        state = "left" if done else ("connected" if result.answered_at else "dialing")
        leg = {"state": state, "connected_at": result.answered_at, "ended_at": result.ended_at,
               "end_reason": call["end_reason"]}  # fmt: skip
        rows.put_leg(conn, call_id, known, role, leg)
    att = result.attempt
    if att is not None:
        new = {"role": role or "callee", "number": att.number, "started_at": att.started_at}
        values = {"result": att.result, "sip_status": att.sip_status, "ended_at": att.ended_at}
        rows.put_attempt(conn, call_id, known, att.leg_id, values, new)
    if done:
        rows.forget((call_id,))


def _save_inbound_snapshot(
    conn: Connection, rows: CallRows, call_id: str, snap: InboundSnapshot
) -> None:
    """Mirror an inbound call (caller ringing the seats) into its rows."""
    known = rows.of(conn, call_id)
    if known is None:
        log.error("inbound snapshot for unknown call %s", call_id)
        return
    state = {
        "ringing": CallState.DIALING,
        "connected": CallState.CONNECTED,
        "handed_over": CallState.CONNECTED,
    }.get(snap.state.value, CallState.ENDED if snap.connected_at else CallState.FAILED)
    call = {"state": state, "connected_at": snap.connected_at, "ended_at": snap.ended_at,
            "end_reason": snap.end_reason}  # fmt: skip
    rows.put_call(conn, call_id, known, call)
    caller, seat = known.legs.get("caller"), known.legs.get("dispatcher")
    caller_state = None
    if caller is not None:
        caller_state = {CallState.CONNECTED: "connected", CallState.DIALING: "ringing"}.get(
            state, "left"
        )
        values: dict[str, Any] = {"connected_at": snap.connected_at, "state": caller_state}
        if snap.ended_at is not None:
            values |= {"ended_at": snap.ended_at, "end_reason": snap.end_reason}
        rows.put_leg(conn, call_id, known, "caller", values)
    if seat is not None:
        seat_state = caller_state if caller_state is not None else seat["state"]
        values = {"number": snap.seat_number or seat["number"], "state": seat_state,
                  "connected_at": snap.connected_at}  # fmt: skip
        rows.put_leg(conn, call_id, known, "dispatcher", values)
    for att in snap.seat_attempts:
        new = {"role": "dispatcher", "number": att.number, "started_at": att.started_at}
        values = {"result": att.result, "sip_status": att.sip_status, "ended_at": att.ended_at}
        rows.put_attempt(conn, call_id, known, att.leg_id, values, new)
    if state in (CallState.ENDED, CallState.FAILED):
        rows.forget((call_id,))


def become_bridge(
    factory: sessionmaker[Session], call_id: str, unit_code: str | None, unit_number: str | None
) -> None:
    """An inbound call now has a unit: it is a bridge from here on (its origin is kept)."""
    with session_scope(factory) as s:
        call = s.get(Call, call_id)
        if call is None:
            return
        call.request = {**(call.request or {}), "origin": call.kind.value}
        call.kind = CallKind.BRIDGE
        call.unit_code = unit_code
        if not any(leg.role == "unit" for leg in call.legs):
            call.legs.append(Leg(role="unit", number=unit_number, state="waiting"))


def recording_started(
    factory: sessionmaker[Session], call_id: str, recording_id: str, directory: str
) -> None:
    """A recording began: its row exists from the first second, so a crash cannot hide it."""
    with session_scope(factory) as s:
        insert_recording(s.connection(), call_id, recording_id, directory)


def _track_json(info: RecordingInfo, root: Path) -> dict[str, Any]:
    return {
        role: {
            "file": str(t.path.relative_to(root)),
            "sha256": t.sha256,
            "size_bytes": t.size_bytes,
            "duration_s": round(t.duration_s, 3),
            "rms_dbfs": None if t.rms <= 0 else round(t.rms_dbfs, 1),
        }
        for role, t in info.tracks.items()
    }


def recording_finished(
    factory: sessionmaker[Session],
    recording_id: str,
    root: Path,
    info: RecordingInfo | None,
    error: str | None,
) -> None:
    """Store the sealed recording (hashes, sizes, duration) and its health."""
    with session_scope(factory) as s:
        _recording_finished(s.connection(), CallRows(), recording_id, root, info, error)


def _recording_finished(
    conn: Connection,
    rows: CallRows,
    recording_id: str,
    root: Path,
    info: RecordingInfo | None,
    error: str | None,
) -> None:
    rows.flush(conn)  # the call's end may be staged
    found = recording_of(conn, recording_id)
    if found is None:
        log.error("finished recording %s has no row", recording_id)
        return
    values: dict[str, Any] = {"finalised_at": utcnow(), "error": error}
    if info is None:
        values["state"] = RecordingState.FAILED
    else:
        values |= info_columns(info, root, error)
        start = found.connected_at if found.segment == 1 else found.resumed_at
        expected = None
        if start is not None and found.ended_at is not None:
            expected = (found.ended_at - start).total_seconds()
        report = check(info, expected)
        values["health"] = {
            "ok": report.ok,
            "findings": [
                {"problem": f.problem.value, "track": f.track, "detail": f.detail}
                for f in report.findings
            ],
        }
    update_recording(conn, recording_id, values)


def info_columns(info: RecordingInfo, root: Path, error: str | None) -> dict[str, Any]:
    """A sealed recording's figures, as its row's columns (`error` is the row's error so far)."""
    if info.lost_s:
        error = (error or "") + f" lost {info.lost_s:.1f} s of audio"
    return {
        "state": RecordingState.INTERRUPTED if info.interrupted else RecordingState.FINALISED,
        "sha256": info.manifest_sha256,
        "size_bytes": sum(t.size_bytes for t in info.tracks.values()),
        "duration_s": round(info.duration_s, 3),
        "tracks": _track_json(info, root),
        "error": error,
    }


def apply_info(rec: Recording, info: RecordingInfo, root: Path) -> None:
    """Copy a sealed recording's figures into its row."""
    for column, value in info_columns(info, root, rec.error).items():
        setattr(rec, column, value)


def sealed_after_crash(rec: Recording, root: Path, now: datetime) -> RecordingInfo | None:
    """A segment still `recording` in the database whose files were sealed without the service
    (a media worker seals what it holds when the service dies, calls/media_workers): read its
    manifest, store its figures, mark it interrupted. None when there is no manifest."""
    if rec.state is not RecordingState.RECORDING:
        return None
    directory = root / rec.directory
    if not (directory / MANIFEST_FILE).is_file():
        return None
    try:
        info = read_manifest(directory)
    except (OSError, ValueError, RecordingError) as exc:
        log.error("recording %s: sealed but its manifest is unreadable: %s", rec.id, exc)
        return None
    apply_info(rec, info, root)
    rec.state, rec.finalised_at = RecordingState.INTERRUPTED, now
    return info


@dataclass(frozen=True, slots=True)
class OrphanLeg:
    """A party a crashed process left in a call: its leg row and its SIP dialog."""

    call_id: str
    role: str
    dialog: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Interrupted:
    """What `mark_interrupted` found: the calls it ended and the legs whose dialogs are open."""

    call_ids: list[str]
    orphans: list[OrphanLeg]


def mark_interrupted(
    factory: sessionmaker[Session],
    node: str,
    recovered: list[RecordingInfo],
    root: Path,
    now: datetime,
    *,
    reason: str = "interrupted",
    keep: Collection[str] = (),
) -> Interrupted:
    """After a crash: calls this node left open are ended "interrupted"; recovered recordings are
    stored. Returns the calls marked and the legs still in a SIP dialog (to be sent BYE).

    With `reason="node_lost"` a survivor ends the calls of another node that stopped
    heart-beating: their recordings, whose files sit on that node's disk, are marked interrupted
    (they are sealed when that node starts again with its data)."""
    marked: list[str] = []
    orphans: list[OrphanLeg] = []
    with session_scope(factory) as s:
        by_id = {info.recording_id: info for info in recovered}
        for rec in s.scalars(select(Recording).where(Recording.id.in_(list(by_id)))):
            apply_info(rec, by_id[rec.id], root)
            rec.finalised_at = now
        open_calls = s.scalars(
            select(Call).where(
                Call.node == node, Call.state.in_([CallState.DIALING, CallState.CONNECTED])
            )
        )
        for call in open_calls:
            if call.id in keep:  # carried on after the crash (calls/resume.py)
                continue
            segment = call.last_recording
            info = by_id.get(segment.id) if segment is not None else None
            if info is None and segment is not None and reason != "node_lost":
                info = sealed_after_crash(segment, root, now)
            call.ended_at = info.ended_at if info is not None else now
            call.state = CallState.ENDED if call.connected_at else CallState.FAILED
            call.end_reason, call.interrupted = reason, True
            for leg in call.legs:
                if leg.ended_at is None:
                    if leg.dialog:  # answered (or ringing) and not seen ending: the peer may
                        # still be in it (or its phone ringing): BYE (or CANCEL) it
                        orphans.append(OrphanLeg(call.id, leg.role, dict(leg.dialog)))
                        ringing = PENDING_INVITE in leg.dialog
                        leg.recovery = "cancel pending" if ringing else "bye pending"
                    leg.ended_at, leg.end_reason = call.ended_at, reason
                    if leg.state in ("connected", "confirming", "dialing", "waiting"):
                        leg.state = "left"
            recording = segment
            if recording is not None and recording.state is RecordingState.RECORDING:
                if reason == "node_lost":
                    recording.state = RecordingState.INTERRUPTED
                    recording.error = f"node {node} lost: the partial files stay on its disk"
                else:
                    recording.state = RecordingState.FAILED
                    recording.error = "no audio found after the crash"
            marked.append(call.id)
    return Interrupted(marked, orphans)


T = TypeVar("T")


class CallRecords:
    """The call records (CDR) of this node: calls, legs, attempts and recordings in the database.

    Writes from the event loop are queued to one writer thread (`queue_*`, see
    `calls.record_writer`): neither the loop (where the 20 ms media tick runs) nor a flow ever
    waits on SQL, and what piles up under load is written many changes to one transaction, a
    call's snapshots coalesced to its latest. `insert` and the other coroutines run in the same
    thread and return their result.
    """

    def __init__(self, factory: sessionmaker[Session], recordings_root: Path) -> None:
        self.factory = factory
        self.recordings_root = recordings_root
        self.rows = CallRows()  # what the writer thread last wrote (calls.record_rows)
        self.writer = BatchWriter(factory, staged=self.rows)

    async def _run(self, fn: Callable[..., T], *args: object) -> T:
        return await self.writer.run(fn, *args)

    async def _run_then_forget(self, call_id: str | None, fn: Callable[..., T], *args: object) -> T:
        """Run `fn` in the writer thread; it changes calls' rows in its own way, so the writer
        reads them again before its next write (`call_id`'s, or every call's when None)."""

        def run() -> T:
            try:
                return fn(*args)
            finally:
                if call_id is None:
                    self.rows.forget_all()
                else:
                    self.rows.forget((call_id,))

        return await self.writer.run(run)

    async def flushed(self) -> None:
        """Wait until every queued write is done."""
        await self.writer.flushed()

    async def close(self, timeout: float) -> None:
        """Wait for queued writes (bounded), then stop the writer thread."""
        await self.writer.close(timeout)

    # -- awaited --
    async def insert(self, new: NewCall) -> str:
        """Store a new call with its legs; returns its id."""
        call_id = await self._run(insert_call, self.factory, new)
        self.rows.seed(call_id, new.kind, new.parties)
        return call_id

    async def become_bridge(
        self, call_id: str, unit_code: str | None, unit_number: str | None
    ) -> None:
        await self._run_then_forget(
            call_id, become_bridge, self.factory, call_id, unit_code, unit_number
        )

    async def mark_interrupted(
        self, node: str, recovered: list[RecordingInfo], now: datetime
    ) -> Interrupted:
        return await self._run_then_forget(
            None, mark_interrupted, self.factory, node, recovered, self.recordings_root, now
        )

    async def mark_node_lost(self, node: str, now: datetime) -> Interrupted:
        """End another node's open calls `node_lost` (that node stopped heart-beating)."""

        def run() -> Interrupted:
            return mark_interrupted(
                self.factory, node, [], self.recordings_root, now, reason="node_lost"
            )

        return await self._run_then_forget(None, run)

    # -- in the caller's thread (API worker threads) --
    def insert_now(self, new: NewCall) -> str:
        call_id = insert_call(self.factory, new)
        self.rows.seed(call_id, new.kind, new.parties)
        return call_id

    # -- queued from the event loop --
    def _queue_rows(
        self,
        fn: Callable[..., None],
        call_id: str,
        *args: object,
        what: str,
        key: Hashable | None = None,
    ) -> None:
        """Queue `fn(connection, rows, call_id, *args)`: Core statements, the cache kept."""
        rows = self.rows

        def apply(s: Session) -> None:
            fn(s.connection(), rows, call_id, *args)

        self.writer.queue(Write(apply, what, call_id, core=True), key)

    def queue_bridge_snapshot(
        self, call_id: str, snapshot: BridgeSnapshot, labels: dict[str, str]
    ) -> None:
        """A bridge's whole state: replaces its snapshot still waiting to be written."""
        self._queue_rows(_save_bridge_snapshot, call_id, snapshot, labels,
                         what=f"snapshot of {call_id}", key=("snapshot", call_id))  # fmt: skip

    def queue_inbound_snapshot(self, call_id: str, snapshot: InboundSnapshot) -> None:
        """An inbound call's whole state: replaces its snapshot still waiting to be written."""
        self._queue_rows(_save_inbound_snapshot, call_id, snapshot,
                         what=f"snapshot of {call_id}", key=("snapshot", call_id))  # fmt: skip

    def queue_key_prompt(self, call_id: str, result: KeyPromptResult) -> None:
        """Not coalesced: a result carries only its own attempt."""
        self._queue_rows(_save_key_prompt, call_id, result, what=f"key prompt result of {call_id}")

    def queue_sip_call_id(self, call_id: str, role: str, sip_id: str) -> None:
        self._queue_leg_columns(call_id, role, {"sip_call_id": sip_id}, "SIP Call-ID")

    def queue_dialog(self, call_id: str, role: str, state: dict[str, Any]) -> None:
        self._queue_leg_columns(call_id, role, {"dialog": state}, "dialog", only_leg=True)

    def _queue_leg_columns(
        self, call_id: str, role: str, values: dict[str, Any], what: str, *, only_leg: bool = False
    ) -> None:
        rows = self.rows

        def apply(s: Session) -> None:
            rows.set_on_leg(s.connection(), call_id, role, values, only_leg=only_leg)

        self.writer.queue(Write(apply, f"{what} of {call_id} {role}", call_id, core=True))

    def queue_recovery(self, call_id: str, role: str, result: str) -> None:
        rows = self.rows

        def apply(s: Session) -> None:
            rows.set_recovery(s.connection(), call_id, role, result)

        self.writer.queue(Write(apply, f"recovery of {call_id} {role}", call_id, core=True))

    def queue_recording_started(self, call_id: str, recording_id: str, directory: Path) -> None:
        rel = str(directory.relative_to(self.recordings_root))

        def apply(s: Session) -> None:
            insert_recording(s.connection(), call_id, recording_id, rel)

        what = f"recording {recording_id} started"
        self.writer.queue(Write(apply, what, call_id, core=True))

    def queue_recording_finished(
        self, recording_id: str, info: RecordingInfo | None, error: str | None
    ) -> None:
        rows, root = self.rows, self.recordings_root

        def apply(s: Session) -> None:
            _recording_finished(s.connection(), rows, recording_id, root, info, error)

        self.writer.queue(Write(apply, f"recording {recording_id} finished", core=True))

    def queue_write(
        self, fn: Callable[[Session, str, datetime], None], call_id: str, at: datetime, *, what: str
    ) -> None:
        """A small change to one call, `fn(session, call_id, at)`, in order with the others
        (through the ORM: the writer reads the call again before its next write to it)."""
        rows = self.rows

        def apply(s: Session) -> None:
            fn(s, call_id, at)
            rows.forget((call_id,))

        self.writer.queue(Write(apply, f"{what}: {call_id}", call_id))

    async def run(self, fn: Callable[..., T], *args: object) -> T:
        """Run `fn(*args)` in the writer thread, in order with the queued writes (the writer
        reads every call again afterwards: `fn` may have changed any)."""
        return await self._run_then_forget(None, fn, *args)

    async def mark_interrupted_except(
        self, node: str, recovered: list[RecordingInfo], now: datetime, keep: Collection[str]
    ) -> Interrupted:
        """`mark_interrupted`, leaving the calls in `keep` (being carried on) open."""

        def run() -> Interrupted:
            return mark_interrupted(
                self.factory, node, recovered, self.recordings_root, now, keep=keep
            )

        return await self._run_then_forget(None, run)
