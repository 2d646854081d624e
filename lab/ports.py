"""Free port allocation on 127.0.0.1 for lab peers.

SIP ports are handed out as the first port of a block of ``SIP_BLOCK`` (10) ports, every
port of which was free on both UDP and TCP when checked: baresip binds TCP (and TLS) on
``sip_port + 1``, Kamailio may use UDP and TCP on the same number. RTP ports come as
ranges (``RtpRange``) whose every port was free on UDP.

All ports are below the kernel's ephemeral range (32768-60999 by default) so outgoing
client sockets never steal them, and the blocks start at a random offset so parallel
test processes rarely race for the same block. Within one process no block is handed out
twice.
"""

from __future__ import annotations

import random
import socket
import threading
from dataclasses import dataclass

HOST = "127.0.0.1"
SIP_BLOCK = 10
SIP_PORTS = (20000, 29990)  # SIP blocks come from here
RTP_PORTS = (10000, 19998)  # RTP ranges come from here

_lock = threading.Lock()
_taken: set[int] = set()


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


def _alloc(lo: int, hi: int, size: int, kinds: tuple[int, ...]) -> int:
    starts = list(range(lo, hi - size + 2, size))
    random.shuffle(starts)
    with _lock:
        for start in starts:
            ports = range(start, start + size)
            if any(p in _taken for p in ports):
                continue
            if all(_free(p, k) for p in ports for k in kinds):
                _taken.update(ports)
                return start
    raise RuntimeError(f"no free block of {size} ports in {lo}-{hi} on {HOST}")


def sip_port() -> int:
    """First port of a fresh block of ``SIP_BLOCK`` ports free on UDP and TCP.

    Use ``port`` for SIP (UDP, and TCP for Kamailio); ``port + 1`` is then free for
    baresip's TCP listener, the rest of the block for anything else the peer needs
    (e.g. a control socket: ``port + 5``).
    """
    return _alloc(
        SIP_PORTS[0],
        SIP_PORTS[1] + SIP_BLOCK - 1,
        SIP_BLOCK,
        (socket.SOCK_DGRAM, socket.SOCK_STREAM),
    )


def rtp_range(size: int = 20) -> RtpRange:
    """A range of ``size`` UDP ports (even start, as RTP likes) for one peer's media."""
    if size < 2 or size % 2:
        raise ValueError("RTP range size must be even and >= 2")
    start = _alloc(RTP_PORTS[0], RTP_PORTS[1] + 1, size, (socket.SOCK_DGRAM,))
    return RtpRange(start, start + size - 1)


def release(port_or_range: int | RtpRange) -> None:
    """Give a block back to this process's pool (optional; blocks are plentiful)."""
    with _lock:
        if isinstance(port_or_range, RtpRange):
            _taken.difference_update(range(port_or_range.lo, port_or_range.hi + 1))
        else:
            start = port_or_range - (port_or_range - SIP_PORTS[0]) % SIP_BLOCK
            _taken.difference_update(range(start, start + SIP_BLOCK))
