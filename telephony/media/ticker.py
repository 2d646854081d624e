"""The one 20 ms clock of the process: every leg of every conference is driven from here.

Deadlines are absolute (start + k * interval), so lateness never accumulates into drift.
When the loop was blocked for longer than a tick, the missed ticks are skipped, not run in a
burst; the tick index still advances, so RTP timestamps stay in step with wall-clock time.
Units do as little as possible in `tick`: decoding and DTMF detection happen on receive.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

log = logging.getLogger(__name__)

TICK_SECONDS = 0.02


class TickUnit(Protocol):
    """Something driven once per tick: a conference, or a leg that is in none."""

    def tick(self, index: int, now: float) -> None: ...


@dataclass(slots=True)
class TickerStats:
    ticks: int = 0
    skipped: int = 0  # ticks missed because the loop was blocked
    max_late_ms: float = 0.0
    work_ms_total: float = 0.0
    work_ms_max: float = 0.0
    failures: int = 0

    @property
    def work_ms_mean(self) -> float:
        return self.work_ms_total / self.ticks if self.ticks else 0.0


class Ticker:
    """Calls `tick(index, now)` on every unit every `interval` seconds, on one task."""

    def __init__(
        self, interval: float = TICK_SECONDS, perf: Callable[[], float] = time.perf_counter
    ):
        self.interval = interval
        self.stats = TickerStats()
        self.index = 0
        self._units: dict[TickUnit, None] = {}
        self._snapshot: tuple[TickUnit, ...] | None = ()
        self._task: asyncio.Task[None] | None = None
        self._perf = perf

    def __len__(self) -> int:
        return len(self._units)

    def add(self, unit: TickUnit) -> None:
        self._units[unit] = None
        self._snapshot = None

    def discard(self, unit: TickUnit) -> None:
        if self._units.pop(unit, 0) is None:
            self._snapshot = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="media-ticker")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                if not task.cancelled():
                    raise

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        interval = self.interval
        deadline = loop.time() + interval
        while True:
            delay = deadline - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            now = loop.time()
            late = now - deadline
            if late >= interval:
                missed = int(late / interval)
                self.stats.skipped += missed
                self.index += missed
                deadline += missed * interval
            self.stats.max_late_ms = max(self.stats.max_late_ms, late * 1000.0)
            self._tick_all(now)
            deadline += interval

    def _tick_all(self, now: float) -> None:
        started = self._perf()
        units = self._snapshot
        if units is None:
            units = self._snapshot = tuple(self._units)
        index = self.index
        for unit in units:
            try:
                unit.tick(index, now)
            except Exception:
                self.stats.failures += 1
                log.exception("media tick failed for %r; unit removed", unit)
                self.discard(unit)
        self.index = index + 1
        work = (self._perf() - started) * 1000.0
        st = self.stats
        st.ticks += 1
        st.work_ms_total += work
        if work > st.work_ms_max:
            st.work_ms_max = work
