"""The call records: calls, legs, attempts and recordings in the database.

`CallRecords` (at the end) binds the synchronous SQL of the call records to one writer thread
so the event loop and the media tick never wait on SQL: a new call's rows (here), the flows'
snapshots (`calls.snapshot_rows`), recordings (`calls.recording_rows`), and the calls a crash
left open (`calls.interrupted_calls`). Snapshots, SIP Call-IDs and dialogs are written as Core
statements of what changed (`calls.record_rows`); the rarer writes (a recording finished, crash
recovery, an inbound call becoming a bridge) through the ORM."""

from __future__ import annotations

from collections.abc import Callable, Collection, Hashable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from callflows.bridge import BridgeSnapshot
from callflows.inbound import InboundSnapshot
from callflows.ivr import KeyPromptResult
from calls.interrupted_calls import Interrupted, mark_interrupted
from calls.record_rows import CallRows, insert_recording
from calls.record_writer import BatchWriter, Write
from calls.recording_rows import write_recording_finished
from calls.snapshot_rows import save_bridge_snapshot, save_inbound_snapshot, save_key_prompt
from recordings import RecordingInfo
from storage.engine import session_scope
from storage.models.call_records import Call, CallKind, Leg

RECOVERY_CHARS = 60  # legs.recovery is String(60)


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
        self._queue_rows(save_bridge_snapshot, call_id, snapshot, labels,
                         what=f"snapshot of {call_id}", key=("snapshot", call_id))  # fmt: skip

    def queue_inbound_snapshot(self, call_id: str, snapshot: InboundSnapshot) -> None:
        """An inbound call's whole state: replaces its snapshot still waiting to be written."""
        self._queue_rows(save_inbound_snapshot, call_id, snapshot,
                         what=f"snapshot of {call_id}", key=("snapshot", call_id))  # fmt: skip

    def queue_key_prompt(self, call_id: str, result: KeyPromptResult) -> None:
        """Not coalesced: a result carries only its own attempt."""
        self._queue_rows(save_key_prompt, call_id, result, what=f"key prompt result of {call_id}")

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
        result = result[:RECOVERY_CHARS]  # a longer reason must not fail the writer's batch

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
            write_recording_finished(s.connection(), rows, recording_id, root, info, error)

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
