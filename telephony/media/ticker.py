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
from bisect import bisect_left
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

log = logging.getLogger(__name__)

TICK_SECONDS = 0.02


class TickUnit(Protocol):
    """Something driven once per tick: a conference, or a leg that is in none."""

    def tick(self, index: int, now: float) -> None: ...

    def tick_failed(self, error: Exception) -> None:
        """`tick` raised: the unit is no longer driven; it records why (its owner looks)."""
        ...


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


LAG_BUCKETS_S = (0.001, 0.002, 0.005, 0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 1.0)
"""Upper bounds of the tick-lag histogram (seconds); a last bucket takes everything above."""


class LagHistogram:
    """How late each tick fired: a bisect and two additions per tick; read off the hot path
    (the metrics exposition copies `counts` and `total`)."""

    __slots__ = ("bounds", "counts", "total")

    def __init__(self, bounds: tuple[float, ...] = LAG_BUCKETS_S) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.total = 0.0

    def observe(self, seconds: float) -> None:
        self.counts[bisect_left(self.bounds, seconds)] += 1
        self.total += seconds


class Ticker:
    """Calls `tick(index, now)` on every unit every `interval` seconds, from one loop timer."""

    def __init__(
        self, interval: float = TICK_SECONDS, perf: Callable[[], float] = time.perf_counter
    ):
        self.interval = interval
        self.stats = TickerStats()
        self.lag = LagHistogram()
        self.index = 0
        self._units: dict[TickUnit, None] = {}
        self._snapshot: tuple[TickUnit, ...] | None = ()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._handle: asyncio.TimerHandle | None = None
        self._deadline = 0.0
        self._perf = perf

    def __len__(self) -> int:
        return len(self._units)

    def __contains__(self, unit: object) -> bool:
        return unit in self._units

    def add(self, unit: TickUnit) -> None:
        self._units[unit] = None
        self._snapshot = None

    def discard(self, unit: TickUnit) -> None:
        if unit in self._units:
            del self._units[unit]
            self._snapshot = None

    def start(self) -> None:
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
            self._deadline = self._loop.time() + self.interval
            self._handle = self._loop.call_at(self._deadline, self._on_timer)

    async def stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
        self._handle = None
        self._loop = None

    def _on_timer(self) -> None:
        """Runs straight from the loop's timer heap (no task hop), then re-arms itself on the
        next absolute deadline."""
        loop = self._loop
        if loop is None:
            return
        interval = self.interval
        now = loop.time()
        late = now - self._deadline
        self.lag.observe(late)
        if late >= interval:
            missed = int(late / interval)
            self.stats.skipped += missed
            self.index += missed
            self._deadline += missed * interval
        if late * 1000.0 > self.stats.max_late_ms:
            self.stats.max_late_ms = late * 1000.0
        self._tick_all(now)
        self._deadline += interval
        self._handle = loop.call_at(self._deadline, self._on_timer)

    def _tick_all(self, now: float) -> None:
        started = self._perf()
        units = self._snapshot
        if units is None:
            units = self._snapshot = tuple(self._units)
        index = self.index
        for unit in units:
            try:
                unit.tick(index, now)
            except Exception as exc:
                self.stats.failures += 1
                log.exception("media tick failed for %r; unit removed", unit)
                self.discard(unit)
                unit.tick_failed(exc)
        self.index = index + 1
        work = (self._perf() - started) * 1000.0
        st = self.stats
        st.ticks += 1
        st.work_ms_total += work
        if work > st.work_ms_max:
            st.work_ms_max = work
