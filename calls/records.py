"""The call records: calls, legs, attempts and recordings in the database.

The functions are synchronous SQL; `CallRecords` (at the end) binds them to one writer thread
so the event loop and the media tick never wait on SQL."""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from callflows.bridge import BridgeSnapshot
from callflows.inbound import InboundSnapshot
from callflows.ivr import KeyPromptResult, KeyPromptState
from calls.record_writer import BatchWriter, Write
from recordings import RecordingInfo, check, read_manifest
from recordings.errors import RecordingError
from recordings.info import MANIFEST_FILE
from storage.base import utcnow
from storage.engine import session_scope
from storage.models.call_records import (
    Attempt,
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
        call = Call(
            kind=new.kind,
            created_by=new.created_by,
            node=new.node,
            idempotency_key=new.idempotency_key,
            incident_id=new.incident_id,
            unit_code=new.unit_code,
            request=new.request or {},
        )
        for role, number in new.parties:
            call.legs.append(Leg(role=role, number=number, state="waiting"))
        s.add(call)
        s.flush()
        return call.id


def find_by_idempotency_key(factory: sessionmaker[Session], key: str) -> str | None:
    """The id of the call created with this Idempotency-Key, if any."""
    with session_scope(factory) as s:
        return s.scalar(select(Call.id).where(Call.idempotency_key == key))


def save_bridge_snapshot(
    factory: sessionmaker[Session], call_id: str, snap: BridgeSnapshot, labels: dict[str, str]
) -> None:
    """Mirror the flow's snapshot into the call, leg and attempt rows."""
    with session_scope(factory) as s:
        _save_bridge_snapshot(s, call_id, snap, labels)


def _save_bridge_snapshot(
    s: Session, call_id: str, snap: BridgeSnapshot, labels: dict[str, str]
) -> None:
    call = s.get(Call, call_id)
    if call is None:
        log.error("snapshot for unknown call %s", call_id)
        return
    call.state = CallState(snap.state.value)
    call.connected_at = snap.connected_at
    call.ended_at = snap.ended_at
    call.end_reason = snap.end_reason
    legs = {leg.role: leg for leg in call.legs}
    attempts = {a.leg_key: a for a in call.attempts}
    for party in snap.parties:
        leg = legs.get(party.role.value)
        if party.state.value == "absent":  # never dialled (or not carried on after a crash)
            continue
        if leg is None:
            leg = Leg(role=party.role.value)
            call.legs.append(leg)
        leg.number = party.number or leg.number
        leg.state = party.state.value
        leg.muted, leg.held = party.muted, party.held
        leg.connected_at, leg.ended_at = party.connected_at, party.ended_at
        leg.end_reason = party.end_reason
        for att in party.attempts:
            row = attempts.get(att.leg_id)
            if row is None:
                row = Attempt(
                    role=party.role.value,
                    leg_key=att.leg_id,
                    number=att.number,
                    label=labels.get(att.number),
                    started_at=att.started_at,
                )
                call.attempts.append(row)
                attempts[att.leg_id] = row
            row.result, row.sip_status, row.ended_at = att.result, att.sip_status, att.ended_at
            row.extension, row.extension_sent_at = att.extension, att.extension_sent_at
            row.confirmed_at = att.confirmed_at


def save_key_prompt(factory: sessionmaker[Session], call_id: str, result: KeyPromptResult) -> None:
    """Mirror an IVR call (survey, duty check) into its call, leg and attempt rows."""
    with session_scope(factory) as s:
        _save_key_prompt(s, call_id, result)


def _save_key_prompt(s: Session, call_id: str, result: KeyPromptResult) -> None:
    call = s.get(Call, call_id)
    if call is None:
        log.error("IVR result for unknown call %s", call_id)
        return
    done = result.state is KeyPromptState.DONE
    if result.answered_at is not None:
        call.connected_at = result.answered_at
    if done:
        call.state = CallState.ENDED if result.answered_at else CallState.FAILED
        call.ended_at = result.ended_at
        call.end_reason = result.outcome.value if result.outcome else None
    elif result.answered_at is not None:
        call.state = CallState.CONNECTED
    leg = call.legs[0] if call.legs else None
    if leg is not None:
        leg.state = "left" if done else ("connected" if result.answered_at else "dialing")
        leg.connected_at, leg.ended_at = result.answered_at, result.ended_at
        leg.end_reason = call.end_reason
    att = result.attempt
    if att is not None:
        row = next((a for a in call.attempts if a.leg_key == att.leg_id), None)
        if row is None:
            row = Attempt(
                role=leg.role if leg else "callee",
                leg_key=att.leg_id,
                number=att.number,
                started_at=att.started_at,
            )
            call.attempts.append(row)
        row.result, row.sip_status, row.ended_at = att.result, att.sip_status, att.ended_at


def save_inbound_snapshot(
    factory: sessionmaker[Session], call_id: str, snap: InboundSnapshot
) -> None:
    """Mirror an inbound call (caller ringing the seats) into its rows."""
    with session_scope(factory) as s:
        _save_inbound_snapshot(s, call_id, snap)


def _save_inbound_snapshot(s: Session, call_id: str, snap: InboundSnapshot) -> None:
    call = s.get(Call, call_id)
    if call is None:
        log.error("inbound snapshot for unknown call %s", call_id)
        return
    state = snap.state.value
    call.state = {
        "ringing": CallState.DIALING,
        "connected": CallState.CONNECTED,
        "handed_over": CallState.CONNECTED,
    }.get(state, CallState.ENDED if snap.connected_at else CallState.FAILED)
    call.connected_at, call.ended_at, call.end_reason = (
        snap.connected_at,
        snap.ended_at,
        snap.end_reason,
    )
    legs = {leg.role: leg for leg in call.legs}
    caller, seat = legs.get("caller"), legs.get("dispatcher")
    if caller is not None:
        caller.connected_at = snap.connected_at
        caller.state = (
            "connected"
            if call.state is CallState.CONNECTED
            else ("ringing" if call.state is CallState.DIALING else "left")
        )
        if snap.ended_at is not None:
            caller.ended_at, caller.end_reason = snap.ended_at, snap.end_reason
    if seat is not None:
        seat.number = snap.seat_number or seat.number
        seat.state = caller.state if caller is not None else seat.state
        seat.connected_at = snap.connected_at
    attempts = {a.leg_key: a for a in call.attempts}
    for att in snap.seat_attempts:
        row = attempts.get(att.leg_id)
        if row is None:
            row = Attempt(
                role="dispatcher",
                leg_key=att.leg_id,
                number=att.number,
                started_at=att.started_at,
            )
            call.attempts.append(row)
        row.result, row.sip_status, row.ended_at = att.result, att.sip_status, att.ended_at


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


def set_sip_call_id(factory: sessionmaker[Session], call_id: str, role: str, sip_id: str) -> None:
    """Remember the SIP Call-ID of a party's current leg (for tracing with the PBX)."""
    with session_scope(factory) as s:
        _set_sip_call_id(s, call_id, role, sip_id)


def _legs_of(s: Session, call_id: str) -> list[Leg]:
    """The call's legs: no query when the writer's batch loaded the call already."""
    call = s.get(Call, call_id)
    return list(call.legs) if call is not None else []


def _set_sip_call_id(s: Session, call_id: str, role: str, sip_id: str) -> None:
    leg = _leg_of_role(s, call_id, role)
    if leg is not None:
        leg.sip_call_id = sip_id


def _leg_of_role(s: Session, call_id: str, role: str) -> Leg | None:
    """The leg row of `role`; made when missing (an added unit's first dial can be written
    before the snapshot that names it: its Call-ID and dialog must not be lost)."""
    call = s.get(Call, call_id)
    if call is None:
        return None
    leg = next((g for g in call.legs if g.role == role), None)
    if leg is None and call.kind is CallKind.BRIDGE:
        leg = Leg(role=role, state="dialing")
        call.legs.append(leg)
    return leg


def set_dialog(
    factory: sessionmaker[Session], call_id: str, role: str, state: dict[str, Any]
) -> None:
    """Keep the SIP dialog of a party's answered leg (so a crash leaves no party in a dead call)."""
    with session_scope(factory) as s:
        _set_dialog(s, call_id, role, state)


def _set_dialog(s: Session, call_id: str, role: str, state: dict[str, Any]) -> None:
    legs = _legs_of(s, call_id)
    if len(legs) == 1 and legs[0].role != role:  # a one-leg IVR call: its only leg
        leg: Leg | None = legs[0]
    else:
        leg = _leg_of_role(s, call_id, role)
    if leg is not None:
        leg.dialog = state


def recording_started(
    factory: sessionmaker[Session], call_id: str, recording_id: str, directory: str
) -> None:
    """A recording began: its row exists from the first second, so a crash cannot hide it."""
    with session_scope(factory) as s:
        _recording_started(s, call_id, recording_id, directory)


def _recording_started(s: Session, call_id: str, recording_id: str, directory: str) -> None:
    segments = s.scalar(select(func.count()).select_from(Recording).where(
        Recording.call_id == call_id)) or 0  # fmt: skip
    s.add(Recording(id=recording_id, call_id=call_id, directory=directory, segment=segments + 1))


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
        _recording_finished(s, recording_id, root, info, error)


def _recording_finished(
    s: Session, recording_id: str, root: Path, info: RecordingInfo | None, error: str | None
) -> None:
    rec = s.get(Recording, recording_id)
    if rec is None:
        log.error("finished recording %s has no row", recording_id)
        return
    rec.finalised_at = utcnow()
    rec.error = error
    if info is None:
        rec.state = RecordingState.FAILED
        return
    apply_info(rec, info, root)
    expected = _call_seconds(rec.call) if rec.segment == 1 else _resumed_seconds(rec.call)
    report = check(info, expected)
    rec.health = {
        "ok": report.ok,
        "findings": [
            {"problem": f.problem.value, "track": f.track, "detail": f.detail}
            for f in report.findings
        ],
    }


def apply_info(rec: Recording, info: RecordingInfo, root: Path) -> None:
    """Copy a sealed recording's figures into its row."""
    rec.state = RecordingState.INTERRUPTED if info.interrupted else RecordingState.FINALISED
    rec.sha256 = info.manifest_sha256
    rec.size_bytes = sum(t.size_bytes for t in info.tracks.values())
    rec.duration_s = round(info.duration_s, 3)
    rec.tracks = _track_json(info, root)
    if info.lost_s:
        rec.error = (rec.error or "") + f" lost {info.lost_s:.1f} s of audio"


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


def _call_seconds(call: Call) -> float | None:
    if call.connected_at is None or call.ended_at is None:
        return None
    return (call.ended_at - call.connected_at).total_seconds()


def _resumed_seconds(call: Call) -> float | None:
    """How long a later segment should be: from the parties being joined again to the end."""
    if call.resumed_at is None or call.ended_at is None:
        return None
    return (call.ended_at - call.resumed_at).total_seconds()


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


def set_recovery(factory: sessionmaker[Session], call_id: str, role: str, result: str) -> None:
    """What happened to an orphaned leg's dialog (`bye 200`, `bye timeout`, ...)."""
    with session_scope(factory) as s:
        _set_recovery(s, call_id, role, result)


def _set_recovery(s: Session, call_id: str, role: str, result: str) -> None:
    leg = next((g for g in _legs_of(s, call_id) if g.role == role), None)
    if leg is not None:
        leg.recovery = result[:60]


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
        self.writer = BatchWriter(factory)

    async def _run(self, fn: Callable[..., T], *args: object) -> T:
        return await self.writer.run(fn, *args)

    async def flushed(self) -> None:
        """Wait until every queued write is done."""
        await self.writer.flushed()

    async def close(self, timeout: float) -> None:
        """Wait for queued writes (bounded), then stop the writer thread."""
        await self.writer.close(timeout)

    # -- awaited --
    async def insert(self, new: NewCall) -> str:
        """Store a new call with its legs; returns its id."""
        return await self._run(insert_call, self.factory, new)

    async def become_bridge(
        self, call_id: str, unit_code: str | None, unit_number: str | None
    ) -> None:
        await self._run(become_bridge, self.factory, call_id, unit_code, unit_number)

    async def mark_interrupted(
        self, node: str, recovered: list[RecordingInfo], now: datetime
    ) -> Interrupted:
        return await self._run(
            mark_interrupted, self.factory, node, recovered, self.recordings_root, now
        )

    async def mark_node_lost(self, node: str, now: datetime) -> Interrupted:
        """End another node's open calls `node_lost` (that node stopped heart-beating)."""

        def run() -> Interrupted:
            return mark_interrupted(
                self.factory, node, [], self.recordings_root, now, reason="node_lost"
            )

        return await self._run(run)

    # -- in the caller's thread (API worker threads) --
    def insert_now(self, new: NewCall) -> str:
        return insert_call(self.factory, new)

    def find_by_idempotency_key(self, key: str) -> str | None:
        return find_by_idempotency_key(self.factory, key)

    # -- queued from the event loop --
    def queue_bridge_snapshot(
        self, call_id: str, snapshot: BridgeSnapshot, labels: dict[str, str]
    ) -> None:
        """A bridge's whole state: replaces its snapshot still waiting to be written."""
        apply = partial(_save_bridge_snapshot, call_id=call_id, snap=snapshot, labels=labels)
        self.writer.queue(Write(apply, f"snapshot of {call_id}", call_id), ("snapshot", call_id))

    def queue_inbound_snapshot(self, call_id: str, snapshot: InboundSnapshot) -> None:
        """An inbound call's whole state: replaces its snapshot still waiting to be written."""
        apply = partial(_save_inbound_snapshot, call_id=call_id, snap=snapshot)
        self.writer.queue(Write(apply, f"snapshot of {call_id}", call_id), ("snapshot", call_id))

    def queue_key_prompt(self, call_id: str, result: KeyPromptResult) -> None:
        """Not coalesced: a result carries only its own attempt."""
        apply = partial(_save_key_prompt, call_id=call_id, result=result)
        self.writer.queue(Write(apply, f"key prompt result of {call_id}", call_id))

    def queue_sip_call_id(self, call_id: str, role: str, sip_id: str) -> None:
        apply = partial(_set_sip_call_id, call_id=call_id, role=role, sip_id=sip_id)
        self.writer.queue(Write(apply, f"SIP Call-ID of {call_id} {role}", call_id))

    def queue_write(
        self, fn: Callable[[Session, str, datetime], None], call_id: str, at: datetime, *, what: str
    ) -> None:
        """A small change to one call, `fn(session, call_id, at)`, in order with the others."""

        def apply(s: Session) -> None:
            fn(s, call_id, at)

        self.writer.queue(Write(apply, f"{what}: {call_id}", call_id))

    async def run(self, fn: Callable[..., T], *args: object) -> T:
        """Run `fn(*args)` in the writer thread, in order with the queued writes."""
        return await self.writer.run(fn, *args)

    async def mark_interrupted_except(
        self, node: str, recovered: list[RecordingInfo], now: datetime, keep: Collection[str]
    ) -> Interrupted:
        """`mark_interrupted`, leaving the calls in `keep` (being carried on) open."""

        def run() -> Interrupted:
            return mark_interrupted(
                self.factory, node, recovered, self.recordings_root, now, keep=keep
            )

        return await self._run(run)

    def queue_recovery(self, call_id: str, role: str, result: str) -> None:
        apply = partial(_set_recovery, call_id=call_id, role=role, result=result)
        self.writer.queue(Write(apply, f"recovery of {call_id} {role}", call_id))

    def queue_dialog(self, call_id: str, role: str, state: dict[str, Any]) -> None:
        apply = partial(_set_dialog, call_id=call_id, role=role, state=state)
        self.writer.queue(Write(apply, f"dialog of {call_id} {role}", call_id))

    def queue_recording_started(self, call_id: str, recording_id: str, directory: Path) -> None:
        rel = str(directory.relative_to(self.recordings_root))
        apply = partial(
            _recording_started, call_id=call_id, recording_id=recording_id, directory=rel
        )
        self.writer.queue(Write(apply, f"recording {recording_id} started", call_id))

    def queue_recording_finished(
        self, recording_id: str, info: RecordingInfo | None, error: str | None
    ) -> None:
        apply = partial(
            _recording_finished,
            recording_id=recording_id,
            root=self.recordings_root,
            info=info,
            error=error,
        )
        self.writer.queue(Write(apply, f"recording {recording_id} finished"))
