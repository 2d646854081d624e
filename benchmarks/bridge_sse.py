"""A client of the service's ``GET /api/v1/events`` stream, timestamping what it receives.

Every ``call.state`` and ``leg.state`` event is kept per call id with the monotonic time it
arrived here and the service's own ``at`` time, so a benchmark can tell when each leg of a
bridge was connected without polling the API (polling 100 bridges would load the service).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import httpx


@dataclass(frozen=True, slots=True)
class Seen:
    """One event as received: its type, payload, arrival (monotonic) and service time."""

    type: str
    data: dict[str, Any]
    received: float
    at: datetime | None


@dataclass
class EventLog:
    """Events per call id; ``changed`` is set whenever one arrives."""

    by_call: dict[str, list[Seen]] = field(default_factory=lambda: defaultdict(list))
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    connected: asyncio.Event = field(default_factory=asyncio.Event)
    count: int = 0

    def add(self, type_: str, payload: str) -> None:
        data = json.loads(payload)
        call_id = data.get("call_id")
        if not isinstance(call_id, str):
            return
        at = data.get("at")
        seen = Seen(
            type_,
            data,
            time.monotonic(),
            datetime.fromisoformat(at) if isinstance(at, str) else None,
        )
        self.by_call[call_id].append(seen)
        self.count += 1
        self.changed.set()

    def leg_connected(self, call_id: str, role: str) -> Seen | None:
        """The first ``leg.state`` event saying ``role`` is connected."""
        for s in self.by_call.get(call_id, ()):
            if (
                s.type == "leg.state"
                and s.data.get("role") == role
                and s.data.get("state") == "connected"
            ):
                return s
        return None

    def call_state(self, call_id: str) -> str | None:
        """The latest ``call.state`` of the call (None before the first)."""
        states = [
            s.data.get("state") for s in self.by_call.get(call_id, ()) if s.type == "call.state"
        ]
        last = states[-1] if states else None
        return last if isinstance(last, str) else None


async def follow(client: httpx.AsyncClient, log: EventLog) -> None:
    """Read the event stream into ``log`` until cancelled (server-sent events framing)."""
    async with client.stream("GET", "/api/v1/events", timeout=httpx.Timeout(10, read=None)) as resp:
        resp.raise_for_status()
        type_, data = "message", []
        async for line in resp.aiter_lines():
            log.connected.set()
            if not line:
                if data:
                    log.add(type_, "\n".join(data))
                type_, data = "message", []
            elif line.startswith("event:"):
                type_ = line[6:].strip()
            elif line.startswith("data:"):
                data.append(line[5:].lstrip())
