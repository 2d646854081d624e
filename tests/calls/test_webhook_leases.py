"""The webhook outbox on the claimed tables' lease helper (storage/claims.py `OUTBOX`), SQLite and
PostgreSQL, against a real local HTTP receiver: a batch slower than its lease keeps its events
from a second node and sends them once each, in order; a batch whose lease was taken stops
there; the migration gives existing rows their status."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlalchemy import select, text, update
from sqlalchemy.orm import Session, sessionmaker

from calls.webhook import WebhookSender, WebhookSettings
from storage import migrate
from storage import webhooks as repo
from storage.base import utcnow
from storage.engine import make_engine, make_session_factory, session_scope
from storage.models.reminders import OutboxStatus, WebhookOutbox
from tests.api.test_webhook_and_reports import Receiver


@pytest.fixture
def factory(migrated_url: str) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(migrated_url)
    yield make_session_factory(engine)
    engine.dispose()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def _settings(receiver: Receiver, node: str) -> WebhookSettings:
    return WebhookSettings(url=receiver.url, secret="k", node=node, timeout_s=2.0, lease_s=0.6)


def _queue(factory: sessionmaker[Session], n: int) -> list[str]:
    ids = []
    for i in range(n):  # one after the other: created (and due) in this order
        with session_scope(factory) as s:
            event = repo.enqueue(s, "roster.missing", {"n": i}, now=utcnow())
            assert event is not None
            ids.append(event.id)
    return ids


def _sent(receiver: Receiver) -> list[str]:
    return [json.loads(body)["id"] for body, _ in receiver.got]


async def test_a_batch_slower_than_its_lease_keeps_it_and_sends_each_event_once_in_order(
    factory: sessionmaker[Session], receiver: Receiver
) -> None:
    ids = _queue(factory, 4)
    receiver.delay_s = 0.4  # four events: 1.6 s, well past the 0.6 s lease
    first = WebhookSender(factory, _settings(receiver, "node-a"))
    second = WebhookSender(factory, _settings(receiver, "node-b"))
    batch = asyncio.create_task(first.tick())
    others = 0
    while not batch.done():
        await asyncio.sleep(0.15)
        others += await second.tick()  # node-b polls all the while
    assert await batch == 4 and others == 0
    assert _sent(receiver) == ids
    with session_scope(factory) as s:
        events = repo.list_events(s)
    assert all(e.delivered_at is not None and e.attempts == 1 for e in events)


async def test_a_batch_whose_lease_was_taken_stops_there(
    factory: sessionmaker[Session], receiver: Receiver
) -> None:
    ids = _queue(factory, 4)
    receiver.delay_s = 0.4
    first = WebhookSender(factory, _settings(receiver, "node-a"))
    batch = asyncio.create_task(first.tick())
    for _ in range(500):  # until the first event is at the receiver (at most 5 s)
        if receiver.got:
            break
        await asyncio.sleep(0.01)
    with session_scope(factory) as s:  # node-b took the third event after node-a stalled
        s.execute(
            update(WebhookOutbox).where(WebhookOutbox.id == ids[2])
            .values(claimed_by="node-b", claimed_until=utcnow() + timedelta(minutes=1))
        )  # fmt: skip
    assert await batch == 1
    assert _sent(receiver) == ids[:1]  # not the second: it would go out before the third
    with session_scope(factory) as s:
        status = {e.id: e.delivered_at is not None for e in repo.list_events(s)}
    assert status == {ids[0]: True, ids[1]: False, ids[2]: False, ids[3]: False}


def test_the_migration_gives_existing_events_their_status(db_url: str) -> None:
    migrate.upgrade(db_url, "0012")
    engine = make_engine(db_url)
    now = utcnow()
    rows = {"delivered": (now, None), "leased": (None, now), "waiting": (None, None)}
    try:
        with engine.begin() as conn:
            for name, (delivered_at, claimed_until) in rows.items():
                conn.execute(
                    text(
                        "INSERT INTO webhook_outbox (id, event, body, created_at, attempts,"
                        " next_attempt_at, delivered_at, claimed_until, data) VALUES (:id, 'e',"
                        " '{}', :now, 0, :now, :delivered_at, :claimed_until, '{}')"
                    ),
                    {"id": name, "now": now, "delivered_at": delivered_at,
                     "claimed_until": claimed_until},
                )  # fmt: skip
        migrate.upgrade(db_url)
        with make_session_factory(engine)() as s:
            got = {i: st for i, st in s.execute(select(WebhookOutbox.id, WebhookOutbox.status))}
    finally:
        engine.dispose()
    assert got == {
        "delivered": OutboxStatus.DELIVERED,
        "leased": OutboxStatus.SENDING,
        "waiting": OutboxStatus.PENDING,
    }
