"""`GET /api/v1/events`: server-sent events for every state change of calls and legs."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Header, Request
from fastapi.responses import StreamingResponse

from api.auth import DispatcherDep
from api.deps import SQL_BIGINT_MAX, ServiceDep
from calls.event_bus import BusEvent

router = APIRouter(prefix="/api/v1", tags=["events"])
HEARTBEAT_S = 15.0


async def _next(source: AsyncGenerator[list[BusEvent], None]) -> list[BusEvent]:
    return await source.__anext__()


@router.get(
    "/events",
    summary="Server-sent events: call.* and leg.* state changes",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}}},
)
async def events(
    request: Request,
    service: ServiceDep,
    _principal: DispatcherDep,
    # bounded: an id past a bigint opened the stream and then failed the replay's query
    # (PostgreSQL), so a resuming client silently missed what it asked for
    last_event_id: Annotated[
        int | None, Header(alias="Last-Event-ID", ge=0, le=SQL_BIGINT_MAX)
    ] = None,
) -> StreamingResponse:
    # registered before the response starts; every event waiting is written in one go
    source = service.events.subscribe_batches(last_event_id)

    async def stream() -> AsyncIterator[str]:
        yield ": linkcall events\nretry: 3000\n\n"
        pending: asyncio.Task[list[BusEvent]] | None = None
        try:
            while not await request.is_disconnected():
                if pending is None:
                    pending = asyncio.create_task(_next(source))
                done, _ = await asyncio.wait({pending}, timeout=HEARTBEAT_S)
                if not done:
                    yield ": keep-alive\n\n"
                    continue
                try:
                    batch = pending.result()
                except StopAsyncIteration:
                    return
                pending = None
                yield "".join(event.to_sse() for event in batch)
        finally:
            # The generator may be suspended inside the pending __anext__: cancel that task and
            # let it finish (which closes the generator and unsubscribes) before closing it.
            if pending is not None and not pending.done():
                pending.cancel()
                await asyncio.gather(pending, return_exceptions=True)
            with contextlib.suppress(RuntimeError):
                await source.aclose()

    return StreamingResponse(
        stream(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
