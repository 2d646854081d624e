"""A call whose runner fails with an error nothing expected (here: the media engine raising
something that is not a MediaError while a leg is dialled) does not stay open in the records:
the row ends `runner_failed` at once, with every leg ended and the time stored (SQLite and
PostgreSQL). Before, the error was only logged and the call stayed `dialing` until the next
start of the node marked it interrupted."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest
from sqlalchemy.orm import Session, sessionmaker

from callflows.bridge import BridgeSettings
from callflows.events import Role
from calls.manager import BridgeRequest, CallManager, CallSettings
from calls.media_workers.surface import Media
from registry.numbers import DialPolicy
from storage.engine import make_engine, make_session_factory, session_scope
from storage.models.call_records import Call, CallState
from telephony.sip.ua import UserAgent


@pytest.fixture
def factory(migrated_url: str) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(migrated_url)
    yield make_session_factory(engine)
    engine.dispose()


class BrokenMedia:
    """A media engine with a bug: opening an endpoint raises what no runner code catches."""

    host = "127.0.0.1"

    def __init__(self) -> None:
        self.opened = 0

    async def open_endpoint(self, label: str, **_: Any) -> Any:
        self.opened += 1
        raise RuntimeError(f"engine bug while opening {label}")


async def test_a_failed_runner_ends_its_call_with_a_stored_reason(
    factory: sessionmaker[Session], tmp_path: Path
) -> None:
    settings = CallSettings(
        node="node-a",
        recordings_root=tmp_path / "rec",
        data_dir=tmp_path,
        dial_policy=DialPolicy(),
        bridge=BridgeSettings(),
    )
    media = BrokenMedia()
    manager = CallManager(
        settings,
        ua=cast(UserAgent, None),  # never reached: the media fails first
        media=cast(Media, media),
        session_factory=factory,
        publish=lambda topic, data: None,
    )
    req = BridgeRequest(
        {Role.DISPATCHER: ["8001"], Role.CALLER: ["13911112222"], Role.UNIT: ["8003"]}, "disp"
    )
    with session_scope(factory) as s:
        call, created = manager.store_bridge(req, s)
        call_id = call.id
    assert created
    try:
        await manager.start_bridge(call_id, req)
        await manager.wait_idle(10)
        await manager.flushed()
    finally:
        await manager.records.close(5)
    assert media.opened == 1  # the dispatcher's leg: the runner failed on it
    with session_scope(factory) as s:
        row = s.get(Call, call_id)
        assert row is not None
        assert (row.state, row.end_reason) == (CallState.FAILED, "runner_failed")
        assert row.ended_at is not None and not row.interrupted
        assert {leg.role: leg.end_reason for leg in row.legs} == {
            "caller": "runner_failed", "dispatcher": "runner_failed", "unit": "runner_failed"
        }  # fmt: skip
        assert all(leg.ended_at is not None for leg in row.legs)
