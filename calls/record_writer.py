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
- a write is either Core (`core=True`: the calls' snapshots, Call-IDs, dialogs, which
  `calls.record_rows` stages as the changes from what it last wrote, no SELECT, and runs as
  one executemany per kind of statement) or ORM work. The staged statements run before an ORM
  write and before the commit, the ORM's changes are flushed right after their write, and a
  Core write expires what the session holds: the database sees the writes in queue order and
  the ORM reads what the Core statements changed;
- if the batch fails, its staged statements are dropped and the calls it touched forgotten
  (`Staged.rolled_back`: the rollback undid what was remembered of them), and each write is
  retried alone, so one bad write loses only itself (and is logged with what it was).

Awaited work (`run`) goes through the same single thread, after everything submitted before it.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Hashable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from sqlalchemy import Connection
from sqlalchemy.orm import Session, sessionmaker

from storage.engine import session_scope

log = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Write:
    """One queued write: `apply(session)`, what it is (for the log), the call it touches;
    `core` when it runs Core statements on `session.connection()` only."""

    apply: Callable[[Session], None]
    what: str
    call_id: str | None = None
    core: bool = False


class Staged(Protocol):
    """What Core writes leave to run at the end (`calls.record_rows.CallRows`): run before an
    ORM write and the commit; dropped, with what it remembers of `call_ids`, on a rollback."""

    @property
    def pending(self) -> bool: ...

    def flush(self, conn: Connection) -> None: ...

    def rolled_back(self, call_ids: Iterable[str | None]) -> None: ...


class BatchWriter:
    """One thread that writes queued `Write`s in batches (see the module docstring)."""

    def __init__(
        self,
        factory: sessionmaker[Session],
        *,
        name: str = "calls-db",
        staged: Staged | None = None,
    ) -> None:
        self.factory = factory
        self._staged = staged
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
                for write in batch:
                    self._apply(s, write)
                self._flush(s)
        except Exception:
            self._rolled_back(w.call_id for w in batch)
            if len(batch) == 1:
                log.exception("call record write failed: %s", batch[0].what)
                return
            log.warning("a batch of %d call record writes failed; one by one now", len(batch))
            for write in batch:
                self._write_alone(write)
            return
        self.batches += 1
        self.written += len(batch)

    def _apply(self, s: Session, write: Write) -> None:
        """One write, its changes in the database before the next write's reads them."""
        if write.core:
            write.apply(s)
            if s.identity_map:
                s.expire_all()  # objects an earlier ORM write loaded may be stale now
            return
        self._flush(s)
        write.apply(s)
        s.flush()

    def _flush(self, s: Session) -> None:
        if self._staged is not None and self._staged.pending:
            self._staged.flush(s.connection())

    def _rolled_back(self, call_ids: Iterable[str | None]) -> None:
        if self._staged is not None:
            self._staged.rolled_back(call_ids)

    def _write_alone(self, write: Write) -> None:
        try:
            with session_scope(self.factory) as s:
                self._apply(s, write)
                self._flush(s)
        except Exception:
            self._rolled_back((write.call_id,))
            log.exception("call record write failed: %s", write.what)
        else:
            self.written += 1
