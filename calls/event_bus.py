"""An in-process event bus for state changes of calls and legs, streamed as server-sent events.

Publishing never blocks the caller (call flows publish from the event loop): each subscriber has
a bounded queue; a subscriber that falls behind is told it lagged and is dropped, so one slow
browser cannot hold memory or the media tick. A ring of recent events lets a reconnecting
client resume with Last-Event-ID.

Several nodes on one PostgreSQL (calls/event_store.py): `attach` a sink and a backlog. Then
`publish` only hands the event to the sink (the store's writer thread, a non-blocking put); the
store delivers every node's stored events back with `deliver`, with the table's ids, so every
node streams one order; a Last-Event-ID older than the ring is replayed from the backlog.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
from collections import deque
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from storage.base import utcnow

log = logging.getLogger(__name__)

REPLAY_CHUNK = 500  # events of a Last-Event-ID replay handed over per step


@dataclass(frozen=True, slots=True)
class BusEvent:
    """One state change: `type` like "call.state" or "leg.state", `data` JSON-ready."""

    id: int
    type: str
    data: dict[str, Any]
    at: datetime

    def to_sse(self) -> str:
        payload = json.dumps({**self.data, "at": self.at.isoformat()}, ensure_ascii=False)
        return f"id: {self.id}\nevent: {self.type}\ndata: {payload}\n\n"


@dataclass(eq=False)
class _Subscriber:
    queue: asyncio.Queue[BusEvent | None]
    lagged: bool = False


@dataclass
class EventBus:
    """Fan-out of BusEvents to any number of subscribers."""

    queue_size: int = 1000
    history_size: int = 1000
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _subs: set[_Subscriber] = field(default_factory=set)
    _history: deque[BusEvent] = field(default_factory=deque)
    _sink: Callable[[BusEvent], None] | None = None
    _backlog: Callable[[int], Awaitable[list[BusEvent]]] | None = None

    def attach(
        self,
        sink: Callable[[BusEvent], None],
        backlog: Callable[[int], Awaitable[list[BusEvent]]],
    ) -> None:
        """Shared stream: published events go to `sink` (must not block); subscribers get what
        the store `deliver`s, and a Last-Event-ID replay comes from `backlog(last_id)`."""
        self._sink, self._backlog = sink, backlog

    def publish(self, type_: str, data: dict[str, Any]) -> BusEvent:
        """Record and deliver an event; never blocks, never raises for slow subscribers. With a
        sink attached the returned id is local: the stream's id is the one the store assigns."""
        event = BusEvent(next(self._ids), type_, data, utcnow())
        if self._sink is not None:
            self._sink(event)
        else:
            self.deliver((event,))
        return event

    def deliver(self, events: Iterable[BusEvent]) -> None:
        """Keep `events` in the ring and hand them to every subscriber (on the event loop)."""
        for event in events:
            self._fan_out(event)

    def _fan_out(self, event: BusEvent) -> None:
        self._history.append(event)
        while len(self._history) > self.history_size:
            self._history.popleft()
        for sub in list(self._subs):
            try:
                sub.queue.put_nowait(event)
            except asyncio.QueueFull:
                sub.lagged = True
                self._subs.discard(sub)
                log.warning("event subscriber lagged behind by %d events; dropped", self.queue_size)

    def since(self, last_id: int) -> list[BusEvent]:
        """Events after `last_id` still in the history ring."""
        return [e for e in self._history if e.id > last_id]

    def subscribe(self, last_id: int | None = None) -> AsyncGenerator[BusEvent, None]:
        """Register a subscriber now; iterate the result for events (after the replay of those
        since `last_id`). Registration happens at call time, so nothing published after this
        call is missed, even before the first iteration."""
        return self._one_by_one(self.subscribe_batches(last_id))

    def subscribe_batches(self, last_id: int | None = None) -> AsyncGenerator[list[BusEvent], None]:
        """`subscribe`, but each step gives every event waiting at that moment (at least one,
        at most `REPLAY_CHUNK` of a replay): a stream writes them in one go (issue 17: one
        write and one wake-up per burst, not per event)."""
        sub = _Subscriber(asyncio.Queue(self.queue_size))
        self._subs.add(sub)
        return self._drain(sub, last_id)

    @staticmethod
    async def _one_by_one(
        batches: AsyncGenerator[list[BusEvent], None],
    ) -> AsyncGenerator[BusEvent, None]:
        try:
            async for batch in batches:
                for event in batch:
                    yield event
        finally:
            await batches.aclose()

    async def _drain(
        self, sub: _Subscriber, last_id: int | None
    ) -> AsyncGenerator[list[BusEvent], None]:
        seen = 0
        try:
            if last_id is not None:
                if self._backlog is not None:
                    replay = await self._backlog(last_id)
                else:
                    replay = self.since(last_id)
                for start in range(0, len(replay), REPLAY_CHUNK):
                    chunk = replay[start : start + REPLAY_CHUNK]
                    seen = max(seen, chunk[-1].id)
                    yield chunk
            while True:
                if sub.lagged and sub.queue.empty():
                    return
                item = await sub.queue.get()
                batch: list[BusEvent] = []
                while True:
                    if item is None:
                        if batch:
                            yield batch
                        return
                    if item.id > seen:  # not already replayed from the backlog
                        batch.append(item)
                    try:
                        item = sub.queue.get_nowait()
                    except asyncio.QueueEmpty:
                        break
                if batch:
                    yield batch
        finally:
            self._subs.discard(sub)

    def close(self) -> None:
        """End every subscription (service shutdown)."""
        for sub in list(self._subs):
            try:
                sub.queue.put_nowait(None)
            except asyncio.QueueFull:
                sub.lagged = True
        self._subs.clear()
