"""The call records' writer thread: queued writes run in order, many to one transaction.

Call flows change state many times a second under load (every leg dialling, ringing, connected,
every SIP Call-ID and dialog). Written one transaction each, that is one commit and several round
trips per change; on PostgreSQL (a network round trip per statement, a WAL flush per commit) the
single writer thread fell seconds behind at 10 bridges/s, and every thread of the process paid
for its wake-ups (issue 17). So:

- writes are queued from the event loop without waiting (`queue`), and the writer thread takes
  *everything queued so far* as one batch: one session, one transaction, one commit;
- a write with a `key` (a call's snapshot) replaces the queued one with the same key that has
  not run yet: a snapshot is the call's whole state, so only the latest one needs writing; it
  keeps the place of the first, so writes queued after that one still run after it;
- the calls a batch touches are loaded first, with their legs and attempts, in three queries;
- if the batch fails, each of its writes is retried alone, so one bad write loses only itself
  (and is logged with what it was).

Awaited work (`run`) goes through the same single thread, after everything submitted before it.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Hashable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload, sessionmaker

from storage.engine import session_scope
from storage.models.call_records import Call

log = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Write:
    """One queued write: `apply(session)`, what it is (for the log), the call it touches."""

    apply: Callable[[Session], None]
    what: str
    call_id: str | None = None


class BatchWriter:
    """One thread that writes queued `Write`s in batches (see the module docstring)."""

    def __init__(self, factory: sessionmaker[Session], *, name: str = "calls-db") -> None:
        self.factory = factory
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)
        self._lock = threading.Lock()  # guards _queued and _keyed (loop thread vs writer)
        self._queued: list[Write] = []
        self._keyed: dict[Hashable, int] = {}  # key -> index in _queued
        self._pending: set[asyncio.Future[Any]] = set()
        self.batches = 0  # batches written (for tests and benchmarks)
        self.written = 0  # writes applied

    def queue(self, write: Write, key: Hashable | None = None) -> None:
        """Queue a write (from the event loop); never waits for the database."""
        with self._lock:
            index = self._keyed.get(key) if key is not None else None
            if index is not None:
                self._queued[index] = write  # the newer state, in the older one's place
                return
            if key is not None:
                self._keyed[key] = len(self._queued)
            self._queued.append(write)
            if len(self._queued) > 1:
                return  # a drain is already submitted and has not started yet
        fut = asyncio.get_running_loop().run_in_executor(self._executor, self._drain)
        self._pending.add(fut)
        fut.add_done_callback(self._drained)

    async def run(self, fn: Callable[..., T], *args: object) -> T:
        """Run `fn(*args)` in the writer thread, after everything submitted before it."""
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    async def flushed(self) -> None:
        """Wait until every write queued so far is done."""
        await self.run(lambda: None)

    async def close(self, timeout: float) -> None:
        """Wait for queued writes (bounded), then stop the thread."""
        if self._pending:
            await asyncio.wait(list(self._pending), timeout=timeout)
        self._executor.shutdown(wait=True)

    def _drained(self, fut: asyncio.Future[Any]) -> None:
        self._pending.discard(fut)
        if not fut.cancelled() and fut.exception() is not None:
            log.error("call record writer failed", exc_info=fut.exception())

    def _drain(self) -> None:
        """Writer thread: everything queued so far, in one transaction."""
        with self._lock:
            batch, self._queued, self._keyed = self._queued, [], {}
        if not batch:
            return
        try:
            with session_scope(self.factory) as s:
                loaded = _load_calls(s, {w.call_id for w in batch if w.call_id is not None})
                for write in batch:
                    write.apply(s)
                del loaded
        except Exception:
            if len(batch) == 1:
                log.exception("call record write failed: %s", batch[0].what)
                return
            log.warning("a batch of %d call record writes failed; one by one now", len(batch))
            for write in batch:
                self._write_alone(write)
            return
        self.batches += 1
        self.written += len(batch)

    def _write_alone(self, write: Write) -> None:
        try:
            with session_scope(self.factory) as s:
                write.apply(s)
        except Exception:
            log.exception("call record write failed: %s", write.what)
        else:
            self.written += 1


def _load_calls(s: Session, call_ids: set[str]) -> list[Call]:
    """The calls, their legs and attempts, in three queries; the session keeps them (while the
    returned list holds them) so the writes find them without further queries."""
    if not call_ids:
        return []
    stmt = (
        select(Call)
        .where(Call.id.in_(call_ids))
        .options(selectinload(Call.legs), selectinload(Call.attempts))
    )
    return list(s.scalars(stmt))
