"""One event stream across nodes on PostgreSQL: what one node publishes, every node's
subscribers get, in the table's id order, and a Last-Event-ID replays from the table."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from datetime import timedelta

import pytest

from calls.event_bus import BusEvent, EventBus
from calls.event_store import SharedEventStream
from storage import events as repo
from storage.base import utcnow
from storage.engine import make_engine, make_session_factory, session_scope


async def _take(sub: AsyncGenerator[BusEvent, None], n: int, timeout: float = 10) -> list[BusEvent]:
    return [await asyncio.wait_for(sub.__anext__(), timeout) for _ in range(n)]


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
async def test_two_nodes_stream_each_other_s_events_in_one_order(migrated_url: str) -> None:
    engine = make_engine(migrated_url)
    factory = make_session_factory(engine)
    dsn = repo.listener_dsn(migrated_url)
    bus_a, bus_b = EventBus(), EventBus()
    a = SharedEventStream(bus_a, factory, node="a", listen_dsn=dsn, poll_s=30)
    b = SharedEventStream(bus_b, factory, node="b", listen_dsn=dsn, poll_s=30)
    await a.start()
    await b.start()
    try:
        sub_a, sub_b = bus_a.subscribe(), bus_b.subscribe()
        first = asyncio.ensure_future(sub_b.__anext__())
        await asyncio.sleep(0.2)
        started = asyncio.get_running_loop().time()
        bus_a.publish("leg.state", {"call_id": "c1", "role": "unit", "state": "ringing"})
        got = await asyncio.wait_for(first, 10)
        # woken by NOTIFY (the safety poll is 30 s here), not by polling
        assert asyncio.get_running_loop().time() - started < 2.0
        assert (got.type, got.data["call_id"]) == ("leg.state", "c1")
        bus_b.publish("call.state", {"call_id": "c2", "state": "dialing"})
        bus_a.publish("leg.state", {"call_id": "c1", "role": "unit", "state": "connected"})
        on_b = [got, *await _take(sub_b, 2)]
        on_a = await _take(sub_a, 3)
        # both nodes see all three, with the same ids, in the same order
        assert [(e.id, e.type, e.data) for e in on_a] == [(e.id, e.type, e.data) for e in on_b]
        assert [e.id for e in on_a] == sorted(e.id for e in on_a)
        assert {e.data["call_id"] for e in on_a} == {"c1", "c2"}
        # a client of B resuming after the first event gets the other two from the table
        resumed = bus_b.subscribe(last_id=on_b[0].id)
        assert [e.id for e in await _take(resumed, 2)] == [e.id for e in on_b[1:]]
        await resumed.aclose()
        # retention: a stream keeps events for its retention only
        with session_scope(factory) as session:
            assert repo.prune(session, utcnow() - timedelta(hours=1)) == 0
        a.retention = timedelta(seconds=0)
        await a.prune()
        with session_scope(factory) as session:
            assert repo.after(session, 0) == []
        assert a.health().ok and b.health().ok
        await sub_a.aclose()
        await sub_b.aclose()
    finally:
        await a.stop()
        await b.stop()
        engine.dispose()


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
async def test_own_events_are_delivered_by_the_writer_after_lower_ids_of_other_nodes(
    migrated_url: str,
) -> None:
    """A node's own events reach its subscribers without its listener (issue 17: no NOTIFY and
    read in between), and still in the table's order: another node's events stored before
    them come first, with the same ids that node streams."""
    engine = make_engine(migrated_url)
    factory = make_session_factory(engine)
    dsn = repo.listener_dsn(migrated_url)
    bus_a, bus_b = EventBus(), EventBus()
    a = SharedEventStream(bus_a, factory, node="a", listen_dsn=dsn, poll_s=30)
    b = SharedEventStream(bus_b, factory, node="b", listen_dsn=dsn, poll_s=30)
    a._listener = lambda: None  # type: ignore[method-assign]  # A hears nothing from the table
    await a.start()
    await b.start()
    try:
        sub_a, sub_b = bus_a.subscribe(), bus_b.subscribe()
        bus_b.publish("call.state", {"call_id": "b1", "state": "dialing"})
        bus_b.publish("call.state", {"call_id": "b2", "state": "dialing"})
        on_b = await _take(sub_b, 2)
        bus_a.publish("leg.state", {"call_id": "a1", "role": "unit", "state": "connected"})
        on_a = await _take(sub_a, 3, timeout=5)
        assert [e.data["call_id"] for e in on_a] == ["b1", "b2", "a1"]
        assert [e.id for e in on_a[:2]] == [e.id for e in on_b]
        assert on_a[2].id > on_b[1].id
        on_b.append(*await _take(sub_b, 1))  # B hears A's event through NOTIFY, same id
        assert (on_b[2].id, on_b[2].data) == (on_a[2].id, on_a[2].data)
        await sub_a.aclose()
        await sub_b.aclose()
    finally:
        await a.stop()
        await b.stop()
        engine.dispose()
