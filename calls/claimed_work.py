"""The claimed-work runner: the one loop of the jobs that place calls from database rows
(callback surveys, roster reminders, scheduled 查岗).

Each round (`tick`, an interval job on the service's one scheduler) claims as many due rows
as this process has free call slots (storage/claims.py: a lease, SKIP LOCKED, one call per
number), starts one task per claimed row, renews the row's lease every `lease_s / 3` while its
call runs, then stores what happened in one transaction and publishes the event the work names.
A call that raises is stored through the work's `failed` (never lost); a process that dies
mid-call loses nothing: its leases expire and another process (or this one after a restart)
claims those rows again. Stopping (`cancel_all`) cancels the calls in flight and waits, within
a bound, until each is stored through the work's `interrupted`, which releases its lease: no
call is left running behind a stopped runner, and the number is free for another node at once.

What differs between the jobs is a `ClaimedWork`: which rows (`claim`), when (`may_claim`:
calling hours), how a call is placed (`place`), and what is stored (`store`). Database work
runs in a worker thread, so the event loop keeps serving calls and requests.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from datetime import datetime, timedelta
from functools import partial
from typing import Any, Generic, Protocol, TypeVar

from sqlalchemy.orm import Session, sessionmaker

from calls.component import Health
from calls.hooks import Publish
from storage.base import utcnow
from storage.engine import session_scope

log = logging.getLogger(__name__)

STOP_TIMEOUT_S = 10.0
"""How long `cancel_all` waits for a cancelled call to end (its BYE or CANCEL is bounded by
the SIP transaction's timers)."""

INTERRUPTED = "interrupted (shutdown)"
"""The reason stored for a call cancelled by `cancel_all` (or its task cancelled)."""

Event = tuple[str, dict[str, Any]]
"""An event to publish: its type and JSON-ready data."""


class ClaimedItem(Protocol):
    """A claimed row as the work sees it."""

    @property
    def id(self) -> str: ...


class RunSettings(Protocol):
    """How one process runs a kind of claimed work."""

    @property
    def node(self) -> str: ...  # the claim owner: this node's name
    @property
    def lease_s(self) -> float: ...
    @property
    def max_concurrent(self) -> int: ...
    @property
    def poll_s(self) -> float: ...


ItemT = TypeVar("ItemT", bound=ClaimedItem)
ResultT = TypeVar("ResultT")


class ClaimedWork(Protocol[ItemT, ResultT]):
    """One kind of claimed work. The synchronous methods run in a worker thread, in a session
    the runner commits; `failed` runs in the `except` block of the call's exception."""

    label: str  # names the call tasks: "<label>-<row id>"

    def may_claim(self, now: datetime) -> bool:
        """False outside the times the work may call (calling hours)."""
        ...

    def claim(
        self, session: Session, *, now: datetime, lease: timedelta, limit: int
    ) -> list[ItemT]:
        """Claim up to `limit` due rows until `now + lease` (a fresh session)."""
        ...

    def renew(self, session: Session, item: ItemT, until: datetime) -> None:
        """Extend the lease of `item` to `until`; log when it was lost."""
        ...

    def place(self, item: ItemT) -> Coroutine[Any, Any, ResultT]:
        """Place the call of `item` and return what happened."""
        ...

    def failed(self, item: ItemT, exc: Exception, started: datetime) -> ResultT:
        """What to store when `place` raised `exc` (the call was started at `started`)."""
        ...

    def interrupted(self, item: ItemT, started: datetime) -> ResultT:
        """What to store when the call was cancelled (shutdown) before it ended."""
        ...

    def store(self, session: Session, item: ItemT, result: ResultT) -> Event | None:
        """Store the result and release the lease; the event to publish, if any."""
        ...


class ClaimedWorkRunner(Generic[ItemT, ResultT]):
    """Claims, calls and stores one kind of work for one process (`settings.node`). `stop_s`
    bounds how long `cancel_all` waits for a cancelled call to end."""

    def __init__(
        self,
        session_factory: sessionmaker[Session],
        work: ClaimedWork[ItemT, ResultT],
        settings: RunSettings,
        *,
        clock: Callable[[], datetime] = utcnow,
        publish: Publish | None = None,
        stop_s: float = STOP_TIMEOUT_S,
    ) -> None:
        self.session_factory = session_factory
        self.work = work
        self.settings = settings
        self.clock = clock
        self.publish = publish
        self.stop_s = stop_s
        self.lease = timedelta(seconds=settings.lease_s)
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._calling: set[str] = set()  # rows whose call runs (`_run` waits for it)
        self._stopping = False

    @property
    def in_flight(self) -> int:
        """Calls this process is placing now."""
        return len(self._tasks)

    async def tick(self) -> int:
        """Claim due rows into the free call slots and start their calls; returns how many."""
        return await self.start_due(self.clock())

    async def start_due(self, now: datetime) -> int:
        """`tick` at `now` (nothing once `cancel_all` was called)."""
        free = self.settings.max_concurrent - len(self._tasks)
        if self._stopping or free <= 0 or not self.work.may_claim(now):
            return 0
        claimed = await asyncio.to_thread(self._claim, now, free)
        for item in claimed:
            task = asyncio.create_task(self._run(item), name=f"{self.work.label}-{item.id}")
            self._tasks[item.id] = task
            task.add_done_callback(partial(self._forget, item.id))
        return len(claimed)

    def _forget(self, item_id: str, _task: asyncio.Task[None]) -> None:
        self._tasks.pop(item_id, None)

    async def run_once(self) -> int:
        """`tick`, then wait until every call it started has been stored (tests, CLI)."""
        count = await self.tick()
        await self.drain()
        return count

    async def drain(self) -> None:
        """Wait for every call in flight."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks.values()), return_exceptions=True)

    async def cancel_all(self) -> None:
        """Shutdown: start no more calls, cancel those in flight and wait until each is stored
        as interrupted with its lease released (`stop_s` for a call to end, as long again to
        store them all; past that a row's lease expires instead)."""
        self._stopping = True
        for item_id in list(self._calling):
            self._tasks[item_id].cancel()  # `_run` ends its call and stores why
        runs = list(self._tasks.values())
        if not runs:
            return
        _, late = await asyncio.wait(runs, timeout=2 * self.stop_s)
        for run in late:  # storing hangs (the database is unreachable)
            log.error("%s: %s not stored at shutdown", self.work.label, run.get_name())
            run.cancel()
        await asyncio.gather(*runs, return_exceptions=True)

    def _claim(self, now: datetime, limit: int) -> list[ItemT]:
        with session_scope(self.session_factory) as session:
            return self.work.claim(session, now=now, lease=self.lease, limit=limit)

    async def _run(self, item: ItemT) -> None:
        started = self.clock()
        if self._stopping:  # claimed just before shutdown: never dialled
            await self._finish(item, self.work.interrupted(item, started))
            return
        call = asyncio.create_task(self.work.place(item), name=f"{self.work.label}-call-{item.id}")
        self._calling.add(item.id)
        try:
            await self._renew_until_done(item, call)
        except asyncio.CancelledError:  # this task was cancelled: the call must not outlive it
            await self._end(item, call)
            await self._finish(item, self._result(item, call, started))
            raise
        finally:
            self._calling.discard(item.id)
        await self._finish(item, self._result(item, call, started))

    async def _renew_until_done(self, item: ItemT, call: asyncio.Task[ResultT]) -> None:
        """Wait for the call, renewing the lease every third of it."""
        while True:
            done, _ = await asyncio.wait({call}, timeout=self.settings.lease_s / 3)
            if done:
                return
            await asyncio.to_thread(self._renew, item)

    async def _end(self, item: ItemT, call: asyncio.Task[ResultT]) -> None:
        """Cancel the call and wait at most `stop_s` for it to end."""
        call.cancel()
        await asyncio.wait({call}, timeout=self.stop_s)
        if not call.done():
            log.error("%s %s: the call did not end within %.1f s of its cancellation",
                      self.work.label, item.id, self.stop_s)  # fmt: skip

    def _result(self, item: ItemT, call: asyncio.Task[ResultT], started: datetime) -> ResultT:
        """What to store for the call: its result, a failure, or an interruption."""
        if not call.done() or call.cancelled():
            return self.work.interrupted(item, started)
        try:
            return call.result()
        except Exception as exc:  # stored as a failed attempt, never lost
            return self.work.failed(item, exc, started)

    async def _finish(self, item: ItemT, result: ResultT) -> None:
        """Store the result (releasing the lease) and publish its event."""
        event = await asyncio.to_thread(self._store, item, result)
        if self.publish is not None and event is not None:
            self.publish(*event)

    def _renew(self, item: ItemT) -> None:
        with session_scope(self.session_factory) as session:
            self.work.renew(session, item, self.clock() + self.lease)

    def _store(self, item: ItemT, result: ResultT) -> Event | None:
        with session_scope(self.session_factory) as session:
            return self.work.store(session, item, result)


class ClaimedWorkComponent:
    """A service component: the runner's `tick` as an interval job on the service's one
    scheduler (`register`), and its calls cancelled on stop. A subclass names the job."""

    name: str
    job_id: str
    job_name: str
    failure: str  # logged with the exception when a round fails
    log: logging.Logger

    def __init__(self, runner: ClaimedWorkRunner[Any, Any]) -> None:
        self.runner = runner
        self._last_error: str | None = None

    def register(self, add_interval_job: Callable[..., None]) -> None:
        """Add the job through the scheduler's `add_interval_job`."""
        add_interval_job(
            self.tick, seconds=self.runner.settings.poll_s, job_id=self.job_id,
            name=self.job_name,
        )  # fmt: skip

    async def tick(self) -> None:
        """One round; a failure is logged and shown in health, the next tick retries."""
        try:
            await self.runner.tick()
            self._last_error = None
        except Exception as exc:  # the database may be briefly unreachable: log, try next tick
            self.log.exception(self.failure)
            self._last_error = f"{type(exc).__name__}: {exc}"

    async def start(self) -> None:
        """Nothing to start: the scheduler runs the job."""

    async def stop(self) -> None:
        """Cancel calls in flight; each is stored as interrupted and its lease released."""
        await self.runner.cancel_all()

    def health(self) -> Health:
        """Healthy unless the last round failed."""
        if self._last_error:
            return Health(False, self._last_error)
        return Health(True, self.load())

    def load(self) -> str:
        """What health shows while healthy."""
        return f"{self.runner.in_flight} calls in flight"

    def describe(self) -> dict[str, Any]:
        """What the job is configured with (no numbers)."""
        return {"node": self.runner.settings.node, "poll_s": self.runner.settings.poll_s}
