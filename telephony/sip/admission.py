"""The door of the SIP edge: what may enter before any transaction exists (issue 13, finding 1).

Two checks, both cheap and both before a server transaction is created:

* `SourceLimiter.allow(ip)`: a token bucket per source address for everything that is not from a
  trusted peer, taken before the bytes are even parsed. A flood from one address costs a dict
  lookup per datagram once its bucket is empty.
* `Gate.admit(request, source)` (implemented by the UA's `Gatekeeper`): `Accept` (a transaction
  is created), `Refuse(response)` (answered once, statelessly, to the packet's real source) or
  `Drop`.

`RefusalCounts` counts what was refused or dropped, by reason (a low-cardinality label).
"""

from __future__ import annotations

from collections import Counter, OrderedDict
from dataclasses import dataclass
from typing import Protocol

from .message import SipRequest, SipResponse

Address = tuple[str, int]


@dataclass(frozen=True, slots=True)
class Accept:
    """Create a server transaction and pass the request on."""


@dataclass(frozen=True, slots=True)
class Refuse:
    """Answer once, statelessly, to the real source; `reason` is counted."""

    response: SipResponse
    reason: str


@dataclass(frozen=True, slots=True)
class Drop:
    """Say nothing; `reason` is counted."""

    reason: str


Admission = Accept | Refuse | Drop
ACCEPT = Accept()


class Gate(Protocol):
    """What the transaction layer asks before it creates a server transaction."""

    def trusted_source(self, ip: str) -> bool: ...
    def admit(self, req: SipRequest, source: Address) -> Admission: ...


class TokenBucket:
    """`rate` tokens a second up to `burst`; time comes from the caller."""

    __slots__ = ("burst", "rate", "stamp", "tokens")

    def __init__(self, rate: float, burst: float, now: float) -> None:
        self.rate = rate
        self.burst = burst
        self.tokens = burst
        self.stamp = now

    def take(self, now: float) -> bool:
        elapsed = now - self.stamp
        if elapsed > 0:
            self.tokens = min(self.burst, self.tokens + elapsed * self.rate)
            self.stamp = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False


class SourceLimiter:
    """One token bucket per source IP; at most `max_sources` buckets (least recently used go)."""

    def __init__(self, rate: float = 50.0, burst: float = 100.0, max_sources: int = 4096) -> None:
        if rate <= 0 or burst < 1 or max_sources < 1:
            raise ValueError("rate must be positive, burst and max_sources at least 1")
        self.rate = rate
        self.burst = burst
        self.max_sources = max_sources
        self._buckets: OrderedDict[str, TokenBucket] = OrderedDict()

    def allow(self, ip: str, now: float) -> bool:
        bucket = self._buckets.get(ip)
        if bucket is None:
            bucket = self._buckets[ip] = TokenBucket(self.rate, self.burst, now)
            if len(self._buckets) > self.max_sources:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(ip)
        return bucket.take(now)

    def __len__(self) -> int:
        return len(self._buckets)


class RefusalCounts(Counter[str]):
    """Refused and dropped messages by reason (`rate_limited`, `untrusted`, `not_dialog_peer`)."""
