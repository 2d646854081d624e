"""The call records' writer: a burst of state changes lands in the database as the calls' latest
state, in few transactions, and one bad write loses nothing else (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import threading
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import event, select
from sqlalchemy.orm import Session, sessionmaker

from callflows.bridge import BridgeSnapshot, BridgeState
from callflows.bridge_party import PartySnapshot, PartyState
from callflows.dialing import Attempt
from callflows.events import Role
from callflows.inbound import InboundSnapshot, InboundState
from calls.record_writer import Write
from calls.records import CallRecords, NewCall
from storage.engine import make_engine, make_session_factory, session_scope
from storage.models.call_records import Call, CallKind, Leg

T0 = datetime(2026, 12, 6, 8, 0, tzinfo=UTC)
ROLES = (Role.CALLER, Role.DISPATCHER, Role.UNIT)


@pytest.fixture
def factory(migrated_url: str) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(migrated_url)
    yield make_session_factory(engine)
    engine.dispose()


def _snapshot(call_id: str, step: int) -> BridgeSnapshot:
    """Step 0: everyone dialling; each later step connects one more party (then all stay)."""
    parties = []
    for i, role in enumerate(ROLES):
        connected = step > i
        number = f"{3000 + i}"
        attempt = Attempt(
            number, f"{call_id[:8]}-{role.value}", T0, "answered" if connected else None
        )
        parties.append(
            PartySnapshot(
                role,
                PartyState.CONNECTED if connected else PartyState.DIALING,
                number,
                attempt.leg_id,
                False,
                False,
                (attempt,),
                T0 + timedelta(seconds=i) if connected else None,
                None,
                None,
            )
        )
    state = BridgeState.CONNECTED if step >= len(ROLES) else BridgeState.DIALING
    connected_at = T0 + timedelta(seconds=2) if state is BridgeState.CONNECTED else None
    return BridgeSnapshot(call_id, state, tuple(parties), T0, connected_at, None, None, True)


def _new_call() -> NewCall:
    return NewCall(CallKind.BRIDGE, "disp", "node-a", parties=tuple((r.value, None) for r in ROLES))


def _legs(factory: sessionmaker[Session], call_id: str) -> dict[str, str]:
    with session_scope(factory) as s:
        return {leg.role: leg.state for leg in s.scalars(select(Leg).where(Leg.call_id == call_id))}


async def test_a_burst_of_changes_is_stored_as_each_calls_latest_state_in_few_commits(
    factory: sessionmaker[Session], tmp_path: Path
) -> None:
    records = CallRecords(factory, tmp_path)
    ids = [
        records.insert_now(
            NewCall(
                CallKind.BRIDGE, "disp", "node-a", parties=tuple((r.value, None) for r in ROLES)
            )
        )
        for _ in range(20)
    ]
    for step in range(len(ROLES) + 1):  # every call goes through four states, interleaved
        for call_id in ids:
            records.queue_bridge_snapshot(call_id, _snapshot(call_id, step), {})
            records.queue_sip_call_id(call_id, "caller", f"sip-{call_id}-{step}")
    async with asyncio.timeout(30):
        await records.flushed()
    for call_id in ids:
        assert _legs(factory, call_id) == dict.fromkeys(
            ("caller", "dispatcher", "unit"), "connected"
        )
        with session_scope(factory) as s:
            call = s.get(Call, call_id)
            assert call is not None and call.state.value == "connected"
            assert len(call.attempts) == 3
            caller = next(leg for leg in call.legs if leg.role == "caller")
            assert caller.sip_call_id == f"sip-{call_id}-3"  # the last one queued wins
    writer = records.writer
    assert writer.batches < 20, f"{writer.batches} transactions for a burst of 160 changes"
    await records.close(5.0)


async def test_one_bad_write_in_a_batch_loses_only_itself(
    factory: sessionmaker[Session], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    records = CallRecords(factory, tmp_path)
    call_id = records.insert_now(_new_call())

    def broken(_: Session) -> None:
        raise RuntimeError("injected fault")

    with caplog.at_level(logging.WARNING, logger="calls.record_writer"):
        async with _one_batch(records):
            records.queue_sip_call_id(call_id, "unit", "sip-before")
            records.writer.queue(Write(broken, "a write that fails"))
            records.queue_bridge_snapshot(call_id, _snapshot(call_id, 3), {})
    assert "a batch of 3 call record writes failed" in caplog.text
    assert _legs(factory, call_id)["unit"] == "connected"
    with session_scope(factory) as s:
        unit = s.scalar(select(Leg).where(Leg.call_id == call_id, Leg.role == "unit"))
        assert unit is not None and unit.sip_call_id == "sip-before"
    assert "a write that fails" in caplog.text
    await records.close(5.0)


async def test_an_added_units_call_id_and_dialog_written_before_its_snapshot_are_kept(
    factory: sessionmaker[Session], tmp_path: Path
) -> None:
    """unit2 is dialled before the snapshot that names it is stored: its SIP Call-ID and the
    CANCEL of its ringing INVITE land on its own leg row, which the snapshot then completes."""
    records = CallRecords(factory, tmp_path)
    call_id = records.insert_now(
        NewCall(CallKind.BRIDGE, "disp", "node-a", parties=tuple((r.value, None) for r in ROLES))
    )
    records.queue_sip_call_id(call_id, "unit2", "sip-unit2")
    records.queue_dialog(call_id, "unit2", {"pending_invite": {"cancel": "CANCEL ...", "dest": []}})
    base = _snapshot(call_id, 3)
    extra = PartySnapshot(Role.UNIT2, PartyState.DIALING, "3009", "unit2-1", False, False, (),
                          None, None, None)  # fmt: skip
    records.queue_bridge_snapshot(
        call_id, dataclasses.replace(base, parties=(*base.parties, extra)), {}
    )
    async with asyncio.timeout(30):
        await records.flushed()
    with session_scope(factory) as s:
        legs = [leg for leg in s.scalars(select(Leg).where(Leg.call_id == call_id))]
        unit2 = [leg for leg in legs if leg.role == "unit2"]
        assert len(unit2) == 1, [(leg.role, leg.state) for leg in legs]
        assert unit2[0].sip_call_id == "sip-unit2" and unit2[0].number == "3009"
        assert unit2[0].state == "dialing" and unit2[0].dialog is not None
        assert "pending_invite" in unit2[0].dialog
    await records.close(5.0)


# -- the writer's memory of what it wrote (calls/record_rows.py) --


def _leg_rows(factory: sessionmaker[Session], call_id: str) -> list[Leg]:
    with session_scope(factory) as s:
        return list(s.scalars(select(Leg).where(Leg.call_id == call_id).order_by(Leg.id)))


@contextlib.asynccontextmanager
async def _one_batch(records: CallRecords) -> AsyncIterator[None]:
    """Everything queued inside runs as one batch: the writer thread waits at a gate meanwhile."""
    loop = asyncio.get_running_loop()
    gate, at_gate = threading.Event(), asyncio.Event()

    def wait_at_gate() -> None:
        loop.call_soon_threadsafe(at_gate.set)
        gate.wait(30)

    waiting = asyncio.ensure_future(records.writer.run(wait_at_gate))
    await at_gate.wait()
    try:
        yield
    finally:
        gate.set()
        await waiting
    async with asyncio.timeout(30):
        await records.flushed()


async def test_columns_another_session_changed_are_not_overwritten_by_the_next_snapshot(
    factory: sessionmaker[Session], tmp_path: Path
) -> None:
    """Between two snapshots, another session marks the call interrupted, records a recovery
    and ends the caller's leg (as crash recovery or a survivor node does): the next snapshot,
    which changes the dispatcher only, writes the dispatcher and puts nothing back."""
    records = CallRecords(factory, tmp_path)
    call_id = records.insert_now(_new_call())
    records.queue_bridge_snapshot(call_id, _snapshot(call_id, 1), {})
    records.queue_dialog(call_id, "caller", {"call_id": "d1"})
    async with asyncio.timeout(30):
        await records.flushed()
    with session_scope(factory) as s:
        call = s.get(Call, call_id)
        assert call is not None
        call.interrupted = True
        caller = next(leg for leg in call.legs if leg.role == "caller")
        caller.recovery, caller.dialog = "bye 200", {"call_id": "d2"}
        caller.ended_at, caller.end_reason = T0 + timedelta(seconds=9), "node_lost"
    records.queue_bridge_snapshot(call_id, _snapshot(call_id, 2), {})
    async with asyncio.timeout(30):
        await records.flushed()
    with session_scope(factory) as s:
        call = s.get(Call, call_id)
        assert call is not None and call.interrupted
        legs = {leg.role: leg for leg in call.legs}
        assert legs["dispatcher"].state == "connected"
        assert legs["dispatcher"].connected_at == T0 + timedelta(seconds=1)
        caller = legs["caller"]
        assert (caller.recovery, caller.dialog) == ("bye 200", {"call_id": "d2"})
        assert (caller.ended_at, caller.end_reason) == (T0 + timedelta(seconds=9), "node_lost")
    await records.close(5.0)


async def test_a_leg_made_for_a_call_id_is_not_made_again_by_the_snapshot_naming_it(
    factory: sessionmaker[Session], tmp_path: Path
) -> None:
    """The writer already knows the call (its snapshots were written) when an added unit's
    Call-ID arrives, alone in its batch, before the snapshot that names the unit."""
    records = CallRecords(factory, tmp_path)
    call_id = records.insert_now(_new_call())
    records.queue_bridge_snapshot(call_id, _snapshot(call_id, 3), {})
    async with asyncio.timeout(30):
        await records.flushed()
    records.queue_sip_call_id(call_id, "unit2", "sip-unit2")
    async with asyncio.timeout(30):
        await records.flushed()
    base = _snapshot(call_id, 3)
    extra = PartySnapshot(Role.UNIT2, PartyState.DIALING, "3009", "unit2-1", False, False,
                          (Attempt("3009", "unit2-1", T0),), None, None, None)  # fmt: skip
    records.queue_bridge_snapshot(
        call_id, dataclasses.replace(base, parties=(*base.parties, extra)), {}
    )
    async with asyncio.timeout(30):
        await records.flushed()
    unit2 = [leg for leg in _leg_rows(factory, call_id) if leg.role == "unit2"]
    assert [(leg.sip_call_id, leg.number, leg.state) for leg in unit2] == [
        ("sip-unit2", "3009", "dialing")
    ]
    await records.close(5.0)


@pytest.mark.parametrize("inbound_written", [True, False])
async def test_the_unit_leg_an_inbound_call_gets_as_a_bridge_is_not_made_twice(
    factory: sessionmaker[Session], tmp_path: Path, inbound_written: bool
) -> None:
    """An inbound call's rows are known to the writer (from its insert, and from its snapshot
    when `inbound_written`); `become_bridge` adds the unit's leg in its own way: the bridge's
    first snapshot completes that leg, it does not add another."""
    records = CallRecords(factory, tmp_path)
    new = NewCall(CallKind.INBOUND, "sip", "node-a",
                  parties=(("caller", "13800138000"), ("dispatcher", None)))  # fmt: skip
    call_id = await records.insert(new)
    seat = Attempt("8001", "seat-1", T0, "answered", 200)
    if inbound_written:
        records.queue_inbound_snapshot(
            call_id,
            InboundSnapshot(call_id, InboundState.CONNECTED, "13800138000", (seat,), "seat-1",
                            "8001", T0, None, None),
        )  # fmt: skip
    await records.become_bridge(call_id, "U01", "4001")
    records.queue_bridge_snapshot(call_id, _snapshot(call_id, 3), {})
    async with asyncio.timeout(30):
        await records.flushed()
    legs = _leg_rows(factory, call_id)
    assert sorted(leg.role for leg in legs) == ["caller", "dispatcher", "unit"]
    assert {leg.role: leg.state for leg in legs}["unit"] == "connected"
    with session_scope(factory) as s:
        call = s.get(Call, call_id)
        assert call is not None and call.kind is CallKind.BRIDGE
        seats = ["seat-1"] if inbound_written else []
        assert sorted(a.leg_key for a in call.attempts) == sorted(
            [*seats, *(f"{call_id[:8]}-{r.value}" for r in ROLES)]
        )
    await records.close(5.0)


async def test_a_batch_that_fails_after_a_snapshot_still_stores_that_snapshot(
    factory: sessionmaker[Session], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The batch's rollback undoes the snapshot's rows: written again alone, it must not be
    taken as already written."""
    records = CallRecords(factory, tmp_path)
    call_id = records.insert_now(_new_call())

    def broken(_: Session) -> None:
        raise RuntimeError("injected fault")

    with caplog.at_level(logging.ERROR, logger="calls.record_writer"):
        async with _one_batch(records):
            records.queue_bridge_snapshot(call_id, _snapshot(call_id, 3), {})
            records.queue_sip_call_id(call_id, "caller", "sip-caller")
            records.writer.queue(Write(broken, "a write that fails", call_id))
    assert "a write that fails" in caplog.text
    assert _legs(factory, call_id) == dict.fromkeys(("caller", "dispatcher", "unit"), "connected")
    with session_scope(factory) as s:
        call = s.get(Call, call_id)
        assert call is not None and call.state.value == "connected" and len(call.attempts) == 3
        assert {leg.role: leg.sip_call_id for leg in call.legs}["caller"] == "sip-caller"
    await records.close(5.0)


async def test_an_orm_write_between_two_core_writes_sees_the_first_and_precedes_the_second(
    factory: sessionmaker[Session], tmp_path: Path
) -> None:
    records = CallRecords(factory, tmp_path)
    call_id = records.insert_now(_new_call())

    def note_unit_state(s: Session, cid: str, _at: datetime) -> None:
        unit = s.scalar(select(Leg).where(Leg.call_id == cid, Leg.role == "unit"))
        assert unit is not None
        unit.recovery, unit.state = f"saw {unit.state}", "left"

    async with _one_batch(records):
        records.queue_bridge_snapshot(call_id, _snapshot(call_id, 3), {})
        records.queue_write(note_unit_state, call_id, T0, what="note")
        records.queue_sip_call_id(call_id, "unit", "sip-unit")
    unit = next(leg for leg in _leg_rows(factory, call_id) if leg.role == "unit")
    assert (unit.recovery, unit.state, unit.sip_call_id) == ("saw connected", "left", "sip-unit")
    # the ORM write changed a column snapshots own: the next snapshot puts the flow's state back
    records.queue_bridge_snapshot(call_id, _snapshot(call_id, 3), {})
    async with asyncio.timeout(30):
        await records.flushed()
    assert _legs(factory, call_id)["unit"] == "connected"
    await records.close(5.0)


async def test_after_a_restart_the_first_snapshot_of_a_known_call_is_written_correctly(
    factory: sessionmaker[Session], tmp_path: Path
) -> None:
    """A new writer (a new process) knows nothing of a call the old one wrote: it reads it, and
    neither duplicates its legs and attempts nor loses what it holds."""
    before = CallRecords(factory, tmp_path)
    call_id = before.insert_now(_new_call())
    before.queue_bridge_snapshot(call_id, _snapshot(call_id, 1), {})
    before.queue_sip_call_id(call_id, "caller", "sip-caller")
    async with asyncio.timeout(30):
        await before.flushed()
    await before.close(5.0)

    after = CallRecords(factory, tmp_path)
    snap = _snapshot(call_id, 3)
    unit = snap.parties[2]
    second = Attempt("3099", "unit-2", T0 + timedelta(seconds=5), "answered", 200)
    unit = dataclasses.replace(unit, attempts=(*unit.attempts, second), number="3099")
    after.queue_bridge_snapshot(call_id, dataclasses.replace(
        snap, parties=(*snap.parties[:2], unit)), {"3099": "duty staff"})  # fmt: skip
    async with asyncio.timeout(30):
        await after.flushed()
    with session_scope(factory) as s:
        call = s.get(Call, call_id)
        assert call is not None and call.state.value == "connected"
        legs = {leg.role: leg for leg in call.legs}
        assert len(call.legs) == 3 and {r: g.state for r, g in legs.items()} == dict.fromkeys(
            ("caller", "dispatcher", "unit"), "connected"
        )
        assert legs["caller"].sip_call_id == "sip-caller" and legs["unit"].number == "3099"
        attempts = sorted((a.leg_key, a.result, a.label) for a in call.attempts)
        assert len(attempts) == 4
        assert ("unit-2", "answered", "duty staff") in attempts
    await after.close(5.0)


async def test_a_bridges_steady_state_writes_read_nothing(
    factory: sessionmaker[Session], tmp_path: Path
) -> None:
    """A bridge this process inserted: its snapshots, Call-IDs and dialogs are written without
    a single SELECT, and an unchanged snapshot writes nothing at all."""
    records = CallRecords(factory, tmp_path)
    call_id = records.insert_now(_new_call())
    engine = factory.kw["bind"]
    seen: list[str] = []

    def note(_c: object, _cur: object, statement: str, *_: object) -> None:
        seen.append(statement.split()[0].upper())

    event.listen(engine, "before_cursor_execute", note)
    try:
        for step in range(len(ROLES) + 1):
            records.queue_bridge_snapshot(call_id, _snapshot(call_id, step), {})
            records.queue_dialog(call_id, ROLES[min(step, 2)].value, {"step": step})
            async with asyncio.timeout(30):
                await records.flushed()
        writes = len(seen)
        records.queue_bridge_snapshot(call_id, _snapshot(call_id, len(ROLES)), {})
        async with asyncio.timeout(30):
            await records.flushed()
    finally:
        event.remove(engine, "before_cursor_execute", note)
    assert "SELECT" not in seen, seen
    assert seen and set(seen) <= {"UPDATE", "INSERT"} and len(seen) == writes
    assert _legs(factory, call_id) == dict.fromkeys(("caller", "dispatcher", "unit"), "connected")
    await records.close(5.0)


async def test_a_legs_statements_run_in_the_order_queued_within_a_batch(
    factory: sessionmaker[Session], tmp_path: Path
) -> None:
    """The writer runs each kind of statement as one executemany: a dialog for another call's
    leg comes first, yet the dialog of the added unit's leg is not run before that leg's
    INSERT (made for its Call-ID just before)."""
    records = CallRecords(factory, tmp_path)
    other, call_id = records.insert_now(_new_call()), records.insert_now(_new_call())
    async with _one_batch(records):
        records.queue_dialog(other, "caller", {"call_id": "other"})
        records.queue_sip_call_id(call_id, "unit2", "sip-unit2")
        records.queue_dialog(call_id, "unit2", {"call_id": "sip-unit2"})
    unit2 = [leg for leg in _leg_rows(factory, call_id) if leg.role == "unit2"]
    assert [(leg.sip_call_id, leg.dialog) for leg in unit2] == [
        ("sip-unit2", {"call_id": "sip-unit2"})
    ]
    await records.close(5.0)
