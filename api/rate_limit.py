"""Dial rate limits: how many calls the API may place per token and for the whole service.

`LINKCALL_DIAL_RATE` is `per_token=10/min,global=60/min` (units `s`, `min`, `h`), or `off`.
Each limit is a token bucket: it holds N calls and refills N per period, so a burst of N is
allowed and the long-run rate is N per period. A request over either limit gets 429
problem+json with Retry-After (seconds until the bucket has a call again); nothing is dialled.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

_PERIODS = {"s": 1.0, "sec": 1.0, "min": 60.0, "m": 60.0, "h": 3600.0, "hour": 3600.0}


@dataclass(frozen=True, slots=True)
class Rate:
    """N calls per `period_s` seconds."""

    calls: int
    period_s: float


@dataclass(frozen=True, slots=True)
class DialRates:
    """The two limits; None = unlimited."""

    per_token: Rate | None
    global_: Rate | None


def _rate(text: str, name: str) -> Rate:
    count, sep, unit = text.strip().partition("/")
    if not sep or not count.strip().isdigit() or unit.strip() not in _PERIODS:
        raise ValueError(f"LINKCALL_DIAL_RATE: {name} must be N/s, N/min or N/h, got {text!r}")
    calls = int(count)
    if calls < 1:
        raise ValueError(f"LINKCALL_DIAL_RATE: {name} must allow at least one call")
    return Rate(calls, _PERIODS[unit.strip()])


def parse_dial_rate(text: str) -> DialRates:
    """`per_token=10/min,global=60/min` (either may be left out: no limit), or `off`."""
    if text.strip().lower() in ("", "off"):
        return DialRates(None, None)
    found: dict[str, Rate] = {}
    for part in text.split(","):
        key, sep, value = part.strip().partition("=")
        key = key.strip()
        if not sep or key not in ("per_token", "global") or key in found:
            raise ValueError(
                f"LINKCALL_DIAL_RATE must be like per_token=10/min,global=60/min, got {text!r}"
            )
        found[key] = _rate(value, key)
    return DialRates(found.get("per_token"), found.get("global"))


class _Bucket:
    __slots__ = ("level", "stamp")

    def __init__(self, level: float, stamp: float) -> None:
        self.level = level
        self.stamp = stamp


class DialLimiter:
    """Token buckets per API token and one for the service; thread-safe (handlers run in
    worker threads)."""

    MAX_TOKENS_TRACKED = 10_000

    def __init__(self, rates: DialRates, clock: Callable[[], float] = time.monotonic) -> None:
        self._rates = rates
        self._clock = clock
        self._lock = threading.Lock()
        self._tokens: dict[str, _Bucket] = {}
        self._global: _Bucket | None = None

    def _refill(self, bucket: _Bucket, rate: Rate, now: float) -> None:
        per_s = rate.calls / rate.period_s
        bucket.level = min(float(rate.calls), bucket.level + (now - bucket.stamp) * per_s)
        bucket.stamp = now

    @staticmethod
    def _wait_s(bucket: _Bucket, rate: Rate) -> float:
        return (1.0 - bucket.level) * rate.period_s / rate.calls

    def acquire(self, token_id: str) -> float:
        """Take one call from both buckets and return 0, or take nothing and return the
        seconds until a call would be allowed."""
        per_token, glob = self._rates.per_token, self._rates.global_
        with self._lock:
            now = self._clock()
            checks: list[tuple[_Bucket, Rate]] = []
            if per_token is not None:
                bucket = self._tokens.get(token_id)
                if bucket is None:
                    if len(self._tokens) >= self.MAX_TOKENS_TRACKED:
                        self._tokens.clear()  # full buckets again: at worst one more burst
                    bucket = self._tokens[token_id] = _Bucket(float(per_token.calls), now)
                checks.append((bucket, per_token))
            if glob is not None:
                if self._global is None:
                    self._global = _Bucket(float(glob.calls), now)
                checks.append((self._global, glob))
            for bucket, rate in checks:
                self._refill(bucket, rate, now)
            wait = max((self._wait_s(b, r) for b, r in checks if b.level < 1.0), default=0.0)
            if wait > 0:
                return wait
            for bucket, _ in checks:
                bucket.level -= 1.0
            return 0.0


def retry_after(wait_s: float) -> str:
    """The Retry-After header value (whole seconds, at least 1)."""
    return str(max(1, math.ceil(wait_s)))
