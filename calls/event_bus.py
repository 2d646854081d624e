"""An in-process event bus for state changes of calls and legs, streamed as server-sent events.

Publishing never blocks the caller (call flows publish from the event loop): each subscriber has
a bounded queue; a subscriber that falls behind is told it lagged and is dropped, so one slow
browser cannot hold memory or the media tick. A ring of recent events lets a reconnecting
client resume with Last-Event-ID.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
from collections import deque
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from storage.base import utcnow

log = logging.getLogger(__name__)


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

    def publish(self, type_: str, data: dict[str, Any]) -> BusEvent:
        """Record and deliver an event; never blocks, never raises for slow subscribers."""
        event = BusEvent(next(self._ids), type_, data, utcnow())
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
        return event

    def since(self, last_id: int) -> list[BusEvent]:
        """Events after `last_id` still in the history ring."""
        return [e for e in self._history if e.id > last_id]

    def subscribe(self, last_id: int | None = None) -> AsyncGenerator[BusEvent, None]:
        """Register a subscriber now; iterate the result for events (after the replay of those
        since `last_id`). Registration happens at call time, so nothing published after this
        call is missed, even before the first iteration."""
        sub = _Subscriber(asyncio.Queue(self.queue_size))
        self._subs.add(sub)
        replay = self.since(last_id) if last_id is not None else []
        return self._drain(sub, replay)

    async def _drain(
        self, sub: _Subscriber, replay: list[BusEvent]
    ) -> AsyncGenerator[BusEvent, None]:
        try:
            for past in replay:
                yield past
            while True:
                if sub.lagged and sub.queue.empty():
                    return
                event = await sub.queue.get()
                if event is None:
                    return
                yield event
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
