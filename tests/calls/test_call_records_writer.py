"""The call records' writer: a burst of state changes lands in the database as the calls' latest
state, in few transactions, and one bad write loses nothing else (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from callflows.bridge import BridgeSnapshot, BridgeState
from callflows.bridge_party import PartySnapshot, PartyState
from callflows.dialing import Attempt
from callflows.events import Role
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

    with caplog.at_level(logging.ERROR, logger="calls.record_writer"):
        records.queue_sip_call_id(call_id, "unit", "sip-before")
        records.writer.queue(Write(broken, "a write that fails"))
        records.queue_bridge_snapshot(call_id, _snapshot(call_id, 3), {})
        async with asyncio.timeout(30):
            await records.flushed()
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
