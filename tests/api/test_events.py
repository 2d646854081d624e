"""Server-sent events: every published state change reaches a connected client, in order."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest

from calls.event_bus import EventBus
from tests.conftest import LiveService


def _parse(block: str) -> dict[str, str]:
    fields = {}
    for line in block.splitlines():
        key, _, value = line.partition(": ")
        fields[key] = value
    return fields


async def test_a_client_receives_call_events_in_order(live_api: LiveService) -> None:
    bus: EventBus = live_api.app.state.service.events  # type: ignore[attr-defined]
    received: list[dict[str, str]] = []
    async with httpx.AsyncClient(base_url=live_api.base_url, timeout=10) as client:
        async with client.stream(
            "GET", "/api/v1/events", headers=live_api.auth("dispatcher")
        ) as resp:
            assert resp.status_code == 200
            assert resp.headers["content-type"].startswith("text/event-stream")
            buffer = ""
            # the bus belongs to the server's event loop (another thread): publish there
            server_loop = live_api.app.state.service.loop  # type: ignore[attr-defined]
            for state in ("dialing", "connected", "ended"):
                server_loop.call_soon_threadsafe(
                    bus.publish, "call.state", {"call_id": "c1", "state": state}
                )
            async for chunk in resp.aiter_text():
                buffer += chunk
                while "\n\n" in buffer:
                    block, buffer = buffer.split("\n\n", 1)
                    if block.startswith(":") and "event:" not in block:
                        continue
                    received.append(_parse(block))
                if len(received) == 3:
                    break
    assert [e["event"] for e in received] == ["call.state"] * 3
    assert [json.loads(e["data"])["state"] for e in received] == ["dialing", "connected", "ended"]
    assert [int(e["id"]) for e in received] == sorted(int(e["id"]) for e in received)


def test_events_need_a_dispatcher_token(live_api: LiveService) -> None:
    resp = httpx.get(f"{live_api.base_url}/api/v1/events", timeout=5)
    assert resp.status_code == 401
    assert resp.headers["content-type"].startswith("application/problem+json")


async def test_a_slow_subscriber_is_dropped_not_buffered_forever() -> None:
    bus = EventBus(queue_size=5)
    sub = bus.subscribe()
    first = asyncio.ensure_future(sub.__anext__())
    await asyncio.sleep(0)
    for i in range(20):  # never blocks the publisher
        bus.publish("leg.state", {"i": i})
    assert (await first).data == {"i": 0}
    rest = [e.data["i"] async for e in sub]
    assert rest == [1, 2, 3, 4]  # what fitted in its queue, then the stream ends


async def test_reconnecting_with_last_event_id_replays_what_was_missed() -> None:
    bus = EventBus()
    for i in range(5):
        bus.publish("leg.state", {"i": i})
    sub = bus.subscribe(last_id=3)
    assert (await sub.__anext__()).data == {"i": 3}
    assert (await sub.__anext__()).data == {"i": 4}
    await sub.aclose()


async def test_a_burst_waiting_for_a_stream_is_handed_over_at_once_in_order() -> None:
    bus = EventBus()
    for i in range(3):
        bus.publish("leg.state", {"i": i})
    batches = bus.subscribe_batches(last_id=1)  # replays 2 and 3, then what is published
    assert [e.data["i"] for e in await batches.__anext__()] == [1, 2]
    for i in range(3, 7):  # published while the stream was busy writing
        bus.publish("leg.state", {"i": i})
    burst = await batches.__anext__()
    assert [e.data["i"] for e in burst] == [3, 4, 5, 6]
    assert [e.id for e in burst] == sorted(e.id for e in burst)
    await batches.aclose()
    assert not bus._subs  # unsubscribed


@pytest.mark.parametrize("bad", ["abc", "-1", str(2**63)])
def test_a_malformed_last_event_id_is_a_422_problem(live_api: LiveService, bad: str) -> None:
    """Past a bigint the stream used to open and its replay fail in PostgreSQL (the client
    missed its events without a word); a negative id is no event's."""
    resp = httpx.get(
        f"{live_api.base_url}/api/v1/events",
        headers={**live_api.auth("dispatcher"), "Last-Event-ID": bad},
        timeout=5,
    )
    assert resp.status_code == 422
    assert resp.headers["content-type"].startswith("application/problem+json")
    assert [e["field"] for e in resp.json()["errors"]] == ["header.Last-Event-ID"]


async def test_a_client_that_goes_away_is_unsubscribed_without_errors(
    live_api: LiveService, caplog: pytest.LogCaptureFixture
) -> None:
    bus: EventBus = live_api.app.state.service.events  # type: ignore[attr-defined]
    async with httpx.AsyncClient(base_url=live_api.base_url, timeout=10) as client:
        async with client.stream(
            "GET", "/api/v1/events", headers=live_api.auth("dispatcher")
        ) as resp:
            assert resp.status_code == 200
            async for _chunk in resp.aiter_text():
                break
            assert len(bus._subs) == 1
    # the server notices the disconnect at the next event or heartbeat
    server_loop = live_api.app.state.service.loop  # type: ignore[attr-defined]
    for _ in range(50):
        server_loop.call_soon_threadsafe(bus.publish, "leg.state", {"ping": True})
        await asyncio.sleep(0.1)
        if not bus._subs:
            break
    assert not bus._subs
    assert not [r for r in caplog.records if r.levelname == "ERROR"], caplog.text
