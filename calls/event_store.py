"""One event stream across nodes: every node's events in the `events` table, in its id order.

Each node's EventBus hands what it publishes to this component's queue (a non-blocking put, on
the event loop or any thread; the media tick never publishes). A writer thread stores them in
batches on its own connection (storage/events.py: appends serialised by an advisory lock, NOTIFY
at commit, everything in one pipelined round trip). A listener thread holds a dedicated psycopg
connection with LISTEN; on another node's notification (and every `poll_s` as a safety net) it
reads the rows after the last one delivered and delivers them to the bus on the event loop, so
every node's subscribers see every node's events, in one order, with the table's ids as SSE ids.
A Last-Event-ID replay reads the table. A lost connection is opened again with a bounded backoff
(0.5 s doubling to 10 s) and the listener catches up from the table.

A node's own events do not wait for its listener (issue 17: NOTIFY, a wake-up and a read cost
the console up to seconds under load): the writer delivers them as soon as they are committed,
with their stored ids. To keep the one order, the same transaction (holding the append lock, so
every lower id is committed) reads the rows other nodes stored after the last id this node
delivered, and those go first. Both threads deliver under one lock and skip what the other
already delivered (`_deliver`), so ids reach the bus strictly increasing and none is skipped.

While the database is unreachable the stream is silent (the writer keeps up to `queue_max`
events and retries); the health check says so. PostgreSQL only: on SQLite (one node) the bus
stays in memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from calls.component import Health
from calls.event_bus import BusEvent, EventBus
from storage import events as repo
from storage.base import utcnow
from storage.engine import session_scope
from storage.events import EventRow

log = logging.getLogger(__name__)

_STOP = object()


class SharedEventStream:
    """A service component (see the module docstring)."""

    name = "event-stream"

    def __init__(
        self,
        bus: EventBus,
        session_factory: sessionmaker[Session],
        *,
        node: str,
        listen_dsn: str,
        retention: timedelta = timedelta(hours=24),
        poll_s: float = 2.0,
        batch_max: int = 500,
        queue_max: int = 100_000,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.bus = bus
        self.factory = session_factory
        self.node = node
        self.dsn = listen_dsn
        self.retention = retention
        self.poll_s = poll_s
        self.batch_max = batch_max
        self.clock = clock
        self._queue: queue.Queue[object] = queue.Queue(queue_max)
        self._stop = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._seen = 0  # the last id handed to the bus (under _deliver_lock)
        self._deliver_lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._write_problem: str | None = None
        self._listen_problem: str | None = None
        self.dropped = 0
        self.stored = 0
        bus.attach(self._put, self.backlog)

    # --- publishing side -------------------------------------------------------------------
    def _put(self, event: BusEvent) -> None:
        try:
            self._queue.put_nowait(event)
        except queue.Full:
            self.dropped += 1
            if self.dropped % 1000 == 1:
                log.error("event store queue full: %d event(s) dropped", self.dropped)

    def _writer(self) -> None:
        backoff = 0.5
        conn: Any = None
        try:
            while True:
                item = self._queue.get()
                if item is _STOP:
                    return
                batch: list[BusEvent] = [item]  # type: ignore[list-item]
                stop_after = False
                while len(batch) < self.batch_max:
                    try:
                        more = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if more is _STOP:
                        stop_after = True
                        break
                    batch.append(more)  # type: ignore[arg-type]
                rows = [(e.type, e.data, e.at) for e in batch]
                while True:
                    try:
                        if conn is None:
                            conn = repo.open_writer(self.dsn)
                        done = repo.append_pipelined(conn, self.node, rows, self._seen)
                        self.stored += len(rows)
                        self._write_problem, backoff = None, 0.5
                        break
                    except Exception as exc:
                        self._write_problem = f"storing events failed: {type(exc).__name__}"
                        log.warning("storing %d event(s) failed (%s); retrying in %.1f s",
                                    len(rows), type(exc).__name__, backoff)  # fmt: skip
                        if conn is not None:
                            with contextlib.suppress(Exception):
                                conn.close()
                            conn = None
                        if stop_after or self._stop.wait(backoff):
                            log.error("stopping: %d event(s) not stored", len(rows))
                            return
                        backoff = min(backoff * 2, 10.0)
                try:
                    self._deliver_own(conn, batch, done)
                except Exception:  # stored anyway: the listener's next poll delivers them
                    log.exception("delivering %d own event(s) failed", len(batch))
                if stop_after:
                    return
        finally:
            if conn is not None:
                with contextlib.suppress(Exception):
                    conn.close()

    def _deliver_own(self, conn: Any, batch: list[BusEvent], done: repo.Appended) -> None:
        """This node's just-committed events, to its own subscribers now, after the rows of
        other nodes with lower ids that are not delivered yet."""
        before, first = done.before, done.ids[0]
        try:
            complete = done.complete
            while not complete:  # more than one read's worth of other nodes' rows below ours
                more = repo.after_raw(conn, before[-1].id, 1000)
                below = [r for r in more if r.id < first]
                before += below
                complete = len(below) < len(more) or len(more) < 1000
        except Exception as exc:  # the listener delivers them (next notification or poll)
            log.warning("delivering %d own event(s) left to the listener (%s)",
                        len(batch), type(exc).__name__)  # fmt: skip
            return
        own = [BusEvent(i, e.type, e.data, e.at) for i, e in zip(done.ids, batch, strict=True)]
        self._deliver([BusEvent(r.id, r.type, r.data, r.at) for r in before] + own)

    def _deliver(self, events: list[BusEvent]) -> None:
        """Hand `events` (ascending ids, every committed id between the first and the last)
        to the bus, except those already delivered: ids reach the bus strictly increasing."""
        with self._deliver_lock:
            fresh = [e for e in events if e.id > self._seen]
            if not fresh:
                return
            self._seen = fresh[-1].id
            if self._loop is not None and not self._loop.is_closed():
                self._loop.call_soon_threadsafe(self.bus.deliver, fresh)

    # --- listening side --------------------------------------------------------------------
    def _listener(self) -> None:
        backoff = 0.5
        while not self._stop.is_set():
            try:
                conn = repo.open_listener(self.dsn)
            except Exception as exc:
                self._listen_problem = f"LISTEN connection failed: {type(exc).__name__}"
                log.warning("event listener cannot connect (%s); retrying in %.1f s",
                            type(exc).__name__, backoff)  # fmt: skip
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 10.0)
                continue
            try:
                self._listen_problem, backoff = None, 0.5
                self._catch_up(conn)  # whatever was stored while not listening
                polled = time.monotonic()
                while not self._stop.is_set():
                    # in slices of at most 1 s, so that stop() does not wait for a poll
                    nodes = repo.wait_notify(conn, min(self.poll_s, 1.0))
                    due = time.monotonic() - polled >= self.poll_s
                    if not due and (nodes is None or nodes <= {self.node}):
                        continue  # nothing, or our own events: the writer delivered those
                    self._catch_up(conn)
                    polled = time.monotonic()
            except Exception as exc:
                self._listen_problem = f"event listener failed: {type(exc).__name__}"
                log.warning("event listener lost its connection (%s); reconnecting",
                            type(exc).__name__)  # fmt: skip
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 10.0)
            finally:
                with contextlib.suppress(Exception):
                    conn.close()

    def _catch_up(self, conn: Any) -> None:
        while True:
            rows: list[EventRow] = repo.after_raw(conn, self._seen, 1000)
            if not rows:
                return
            self._deliver([BusEvent(r.id, r.type, r.data, r.at) for r in rows])
            if len(rows) < 1000:
                return

    async def backlog(self, last_id: int) -> list[BusEvent]:
        """Stored events after `last_id` (a client resuming with Last-Event-ID), at most the
        last 24 h (retention) and 50 000 events."""

        def read() -> list[BusEvent]:
            out: list[BusEvent] = []
            after = last_id
            with session_scope(self.factory) as session:
                while len(out) < 50_000:
                    rows = repo.after(session, after, 5000)
                    out += [BusEvent(r.id, r.type, r.data, r.at) for r in rows]
                    if len(rows) < 5000:
                        break
                    after = rows[-1].id
            return out

        return await asyncio.to_thread(read)

    # --- component -------------------------------------------------------------------------
    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._seen = await asyncio.to_thread(self._last_id)  # new subscribers: from now on
        self._stop.clear()
        self._threads = [
            threading.Thread(target=self._writer, name="event-writer", daemon=True),
            threading.Thread(target=self._listener, name="event-listener", daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    def _last_id(self) -> int:
        with session_scope(self.factory) as session:
            return repo.last_id(session)

    async def stop(self) -> None:
        """Store what is queued (bounded wait), then stop listening."""
        with contextlib.suppress(queue.Full):
            await asyncio.to_thread(self._queue.put, _STOP, True, 5.0)
        writer, listener = self._threads or (None, None)
        if writer is not None:
            await asyncio.to_thread(writer.join, 10.0)
        self._stop.set()
        if listener is not None:
            await asyncio.to_thread(listener.join, self.poll_s + 2.0)
        self._threads = []

    def health(self) -> Health:
        problem = self._write_problem or self._listen_problem
        if problem is not None:
            return Health(False, problem)
        return Health(True, f"shared event stream, last id {self._seen}, {self.stored} stored")

    async def prune(self) -> None:
        """Delete stored events older than the retention (a scheduler job; every node may run
        it, the delete is idempotent)."""
        before = self.clock() - self.retention
        count = await asyncio.to_thread(self._prune, before)
        if count:
            log.info("event stream: %d event(s) older than %s pruned", count, before.isoformat())

    def _prune(self, before: datetime) -> int:
        with session_scope(self.factory) as session:
            return repo.prune(session, before)
