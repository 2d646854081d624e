"""Plain in-process counters of the calls this process carried, for the metrics exposition.

Nothing here knows Prometheus: api/metrics.py reads these values when /metrics is scraped.
Labels are roles and results only (never a number, a person or an id).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from callflows.dialing import Attempt


class CallStats:
    """Dial attempts by (role, result), counted once each when the attempt ends; recording
    problems by kind (write errors, low disk, what the verification found)."""

    def __init__(self) -> None:
        self.dial_attempts: Counter[tuple[str, str]] = Counter()
        self.recording_problems: Counter[str] = Counter()

    def snapshot(self) -> dict[tuple[str, str], int]:
        """A copy, safe to read from another thread."""
        return dict(self.dial_attempts.copy())


class AttemptTally:
    """One call's view: counts each of its attempts once, when its result is known."""

    def __init__(self, stats: CallStats | None) -> None:
        self.stats = stats
        self._counted: set[str] = set()

    def update(self, role: str, attempts: Iterable[Attempt]) -> None:
        if self.stats is None:
            return
        for att in attempts:
            if att.result is not None and att.leg_id not in self._counted:
                self._counted.add(att.leg_id)
                self.stats.dial_attempts[(role, att.result)] += 1
