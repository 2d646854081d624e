"""Free port allocation on 127.0.0.1 for lab peers, safe across parallel test processes.

SIP ports come as the first port of a block of ``SIP_BLOCK`` (10) ports, every port of
which was free on both UDP and TCP: baresip binds TCP (and TLS) on ``sip_port + 1``,
Kamailio uses UDP and TCP on the same number, a phone's ctrl_tcp uses ``+ 5``. RTP ports
come as ranges (``RtpRange``) made of whole units of ``RTP_UNIT`` (20) UDP ports.

Ranges, all below the kernel's ephemeral range (32768-60999), so outgoing sockets never
take them:

* SIP blocks: 20000-32759 (this overlaps linkcall's default RTP range 20000-29999: give
  a service started next to the lab an explicit ``LINKCALL_RTP_PORTS`` from ``rtp_range``)
* RTP ranges: 10000-19999

Every allocated unit is also reserved with an exclusive ``flock`` on a lock file in
``<tmp>/linkcall-lab-ports/``, so parallel test processes never hand out the same ports
before a peer has bound them. A plain ``sip_port()``/``rtp_range()`` reservation lasts
``LEASE_S`` seconds (long enough to bind; after that a bound port fails the free check
anyway), so callers that never release cannot exhaust the ranges. Lab peers (through
``Leases``) hold their blocks until stopped; a released block stays reserved for
``QUARANTINE_S`` seconds, so a peer restarted on the same port can ``claim`` it back.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import random
import socket
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

HOST = "127.0.0.1"
SIP_BLOCK = 10
SIP_PORTS = (20000, 32759)  # SIP blocks come from here (inclusive)
RTP_UNIT = 20
RTP_PORTS = (10000, 19999)  # RTP ranges come from here (inclusive)
LOCK_DIR = Path(tempfile.gettempdir()) / "linkcall-lab-ports"
LEASE_S = 60.0  # a plain allocation stays reserved this long
QUARANTINE_S = 20.0  # a released block stays reserved this long before reuse

_lock = threading.Lock()
_held: dict[int, list[int]] = {}  # start port -> lock fds, held until release()
_timed: dict[int, tuple[float, list[int]]] = {}  # start -> (expires at, lock fds)


@dataclass(frozen=True)
class RtpRange:
    """An inclusive range of UDP ports for one peer's media."""

    lo: int
    hi: int

    def __str__(self) -> str:
        return f"{self.lo}-{self.hi}"

    def __len__(self) -> int:
        return self.hi - self.lo + 1


def _free(port: int, kind: int) -> bool:
    with socket.socket(socket.AF_INET, kind) as s:
        if kind == socket.SOCK_STREAM:
            # a TIME_WAIT leftover from an earlier peer does not block a new listener
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((HOST, port))
        except OSError:
            return False
    return True


def _lock_unit(start: int) -> int | None:
    LOCK_DIR.mkdir(parents=True, exist_ok=True)
    fd = os.open(LOCK_DIR / f"{start}.lock", os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return None
    return fd


def _unlock(fds: list[int]) -> None:
    for fd in fds:
        with contextlib.suppress(OSError):
            os.close(fd)  # closing drops the flock


def _try_reserve(start: int, unit: int, units: int, kinds: tuple[int, ...]) -> bool:
    fds: list[int] = []
    for u in range(units):
        fd = _lock_unit(start + u * unit)
        if fd is None:
            _unlock(fds)
            return False
        fds.append(fd)
    size = unit * units
    if not all(_free(p, k) for p in range(start, start + size) for k in kinds):
        _unlock(fds)
        return False
    _timed[start] = (time.monotonic() + LEASE_S, fds)
    return True


def _purge_expired() -> None:
    now = time.monotonic()
    for start, (expires, fds) in list(_timed.items()):
        if now >= expires:
            del _timed[start]
            _unlock(fds)


def _units_taken(unit: int) -> set[int]:
    taken = {s + i * unit for s, fds in _held.items() for i in range(len(fds))}
    taken |= {s + i * unit for s, (_, fds) in _timed.items() for i in range(len(fds))}
    return taken


def _alloc(lo: int, hi: int, unit: int, units: int, kinds: tuple[int, ...]) -> int:
    size = unit * units
    starts = list(range(lo, hi - size + 2, unit))
    random.shuffle(starts)
    with _lock:
        _purge_expired()
        taken = _units_taken(unit)
        for start in starts:
            if any(start + u * unit in taken for u in range(units)):
                continue
            if _try_reserve(start, unit, units, kinds):
                return start
    raise RuntimeError(f"no free block of {size} ports in {lo}-{hi} on {HOST}")


def sip_port() -> int:
    """First port of a fresh block of ``SIP_BLOCK`` ports free on UDP and TCP.

    Reserved for ``LEASE_S`` seconds; bind it before then (lab peers hold theirs).
    """
    return _alloc(SIP_PORTS[0], SIP_PORTS[1], SIP_BLOCK, 1, (socket.SOCK_DGRAM, socket.SOCK_STREAM))


def rtp_range(size: int = 20) -> RtpRange:
    """A range of ``size`` UDP ports (even start, as RTP likes), free right now.

    Reserved in whole units of ``RTP_UNIT`` ports for ``LEASE_S`` seconds.
    """
    if size < 2 or size % 2:
        raise ValueError("RTP range size must be even and >= 2")
    units = -(-size // RTP_UNIT)
    start = _alloc(RTP_PORTS[0], RTP_PORTS[1], RTP_UNIT, units, (socket.SOCK_DGRAM,))
    return RtpRange(start, start + size - 1)


def release(port_or_range: int | RtpRange) -> None:
    """Give a SIP block (by its first port) or an RTP range back. Idempotent.

    The block stays reserved for ``QUARANTINE_S`` seconds (a peer restarted on the same
    port meanwhile can ``claim`` it again), then becomes free for everyone.
    """
    start = port_or_range.lo if isinstance(port_or_range, RtpRange) else port_or_range
    with _lock:
        fds = _held.pop(start, None)
        if fds is None and start in _timed:
            fds = _timed.pop(start)[1]
        if fds:
            _timed[start] = (time.monotonic() + QUARANTINE_S, fds)


def claim(port: int) -> bool:
    """Hold the block starting at ``port`` until ``release`` (for a lab peer).

    True when this call made the hold: the block was leased or in quarantine here, or its
    lock file was free. False when it is already held here, or reserved by another process.
    """
    with _lock:
        if port in _held:
            return False
        if port in _timed:
            _held[port] = _timed.pop(port)[1]
            return True
        fd = _lock_unit(port)
        if fd is None:
            return False
        _held[port] = [fd]
        return True


def held() -> int:
    """How many blocks/ranges this process holds for peers (for leak checks)."""
    with _lock:
        return len(_held)


class Leases:
    """The port blocks one peer holds: allocated, claimed again on restart, released."""

    def __init__(self) -> None:
        self._owned: set[int] = set()

    def sip_port(self) -> int:
        start = sip_port()
        self.claim(start)
        return start

    def rtp_range(self, size: int = 20) -> RtpRange:
        rng = rtp_range(size)
        self.claim(rng.lo)
        return rng

    def claim(self, *starts: int) -> None:
        """Hold these blocks (fresh, explicitly given, or again after a release)."""
        for start in starts:
            if start not in self._owned and claim(start):
                self._owned.add(start)

    def release_all(self) -> None:
        for start in self._owned:
            release(start)
        self._owned.clear()
