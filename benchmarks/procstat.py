"""CPU time and memory of one process, read from /proc by PID (Linux).

``cpu_seconds`` is user + system time (fields 14 and 15 of /proc/PID/stat, in clock ticks);
``rss_kib`` is VmRSS from /proc/PID/status. ``Sampler`` polls both once a second in a thread
so a run can report the mean and the peak CPU share and the peak RSS of a window.
"""

from __future__ import annotations

import itertools
import os
import threading
import time
from dataclasses import dataclass, field

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds the process has used so far."""
    with open(f"/proc/{pid}/stat") as f:
        # the command name (field 2) may hold spaces: split after its closing parenthesis
        rest = f.read().rsplit(")", 1)[1].split()
    utime, stime = int(rest[11]), int(rest[12])
    return (utime + stime) / TICKS


def status_kib(pid: int, key: str) -> int:
    """A ``kB`` value of /proc/PID/status, e.g. ``VmRSS`` or ``VmHWM``."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise KeyError(key)


def rss_kib(pid: int) -> int:
    return status_kib(pid, "VmRSS")


def threads(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("Threads:"):
                return int(line.split()[1])
    return 0


@dataclass
class Window:
    """CPU and memory of a process over one stretch of wall time."""

    seconds: float
    cpu_pct: float  # of one core
    peak_cpu_pct: float  # the busiest one-second sample
    rss_kib: int  # at the end of the window
    peak_rss_kib: int


@dataclass
class Sampler:
    """Samples a process's CPU time and RSS every ``interval`` seconds in a daemon thread."""

    pid: int
    interval: float = 1.0
    samples: list[tuple[float, float, int]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self._sample()
        self._thread = threading.Thread(target=self._loop, name="procstat", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self._sample()
            except (OSError, KeyError, IndexError):
                return  # the process is gone

    def _sample(self) -> None:
        self.samples.append((time.monotonic(), cpu_seconds(self.pid), rss_kib(self.pid)))

    def window(self, t0: float, t1: float) -> Window:
        """Figures between monotonic times t0 and t1 (from the samples nearest inside)."""
        inside = [s for s in self.samples if t0 - 0.5 <= s[0] <= t1 + 0.5]
        if len(inside) < 2:
            now = (time.monotonic(), cpu_seconds(self.pid), rss_kib(self.pid))
            inside = [*inside[-1:], now] if inside else [now, now]
        first, last = inside[0], inside[-1]
        span = max(last[0] - first[0], 1e-9)
        peaks = [
            100.0 * (b[1] - a[1]) / max(b[0] - a[0], 1e-9) for a, b in itertools.pairwise(inside)
        ]
        return Window(
            seconds=span,
            cpu_pct=100.0 * (last[1] - first[1]) / span,
            peak_cpu_pct=max(peaks, default=0.0),
            rss_kib=last[2],
            peak_rss_kib=max(s[2] for s in inside),
        )
