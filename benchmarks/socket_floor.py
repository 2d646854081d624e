"""The CPU floor of the media engine's socket calls: what one process pays per call per tick
for nothing but receiving and sending one RTP packet per leg, with one UDP socket per leg.

    .venv/bin/python benchmarks/socket_floor.py [--calls 150] [--legs 3] [--seconds 10]

A peer process (the phones) sends every leg one 172-octet packet every 20 ms and drains what
it is sent. This process does what the engine's I/O does and nothing else: an epoll set of
every leg's socket, read one datagram per ready socket, and every 20 ms one packet to every
leg. No jitter buffer, no mixing, no recording: any media engine written on one socket per leg
pays at least this, in the kernel (each loopback `sendto` also delivers the datagram to the
peer's socket and wakes the peer) and in the calls' Python wrappers. Issue 17 asked for
<= 30 µs of CPU per call per tick with one worker; this is the floor under that figure.

Two ways are measured, alternately:
- `sendto`/`recvfrom` on unbound-peer sockets, as `telephony.media.endpoint` does (symmetric
  RTP with latching needs packets from any port of the peer's host);
- `send`/`recv` on sockets `connect()`ed to their peer (the kernel keeps the route and filters
  the source; no address tuple is built per packet).

It prints a table of µs of CPU (user, system, total) per call per tick. Nothing here runs in
the test suite.
"""

from __future__ import annotations

import argparse
import os
import resource
import select
import signal
import socket
import sys
import time
from collections.abc import Callable

PACKET = bytes(172)  # 12-octet RTP header + 160 octets of G.711: 20 ms
TICK = 0.02


def _pairs(count: int) -> tuple[list[socket.socket], list[socket.socket]]:
    ours: list[socket.socket] = []
    theirs: list[socket.socket] = []
    for _ in range(count):
        for side in (ours, theirs):
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.bind(("127.0.0.1", 0))
            s.setblocking(False)
            side.append(s)
    return ours, theirs


def _paced(
    socks: list[socket.socket], send: Callable[[], None], seconds: float, connected: bool
) -> int:
    """Every 20 ms: read what is ready, then send one packet on every socket. Returns ticks."""
    ep = select.epoll()
    by_fd = {}
    for s in socks:
        ep.register(s.fileno(), select.EPOLLIN)
        by_fd[s.fileno()] = s
    start = time.monotonic()
    deadline = start
    ticks = 0
    while deadline - start < seconds:
        deadline += TICK
        while True:
            wait = deadline - time.monotonic()
            for fd, _ in ep.poll(max(wait, 0.0)):
                try:
                    if connected:
                        by_fd[fd].recv(2048)
                    else:
                        by_fd[fd].recvfrom(2048)
                except OSError:
                    pass
            if wait <= 0:
                break
        send()
        ticks += 1
    ep.close()
    return ticks


def _peer(theirs: list[socket.socket], ours: list[socket.socket]) -> None:
    addrs = [s.getsockname() for s in ours]

    def send() -> None:
        for s, a in zip(theirs, addrs, strict=True):
            try:  # noqa: SIM105 (contextlib.suppress costs more than the call measured)
                s.sendto(PACKET, a)
            except OSError:
                pass

    _paced(theirs, send, 1e9, connected=False)


def measure(legs: int, mode: str, seconds: float) -> tuple[float, float, int]:
    ours, theirs = _pairs(legs)
    pid = os.fork()
    if pid == 0:  # the phones
        try:
            _peer(theirs, ours)
        finally:
            os._exit(0)
    try:
        peers = [s.getsockname() for s in theirs]
        if mode == "connected":
            for s, a in zip(ours, peers, strict=True):
                s.connect(a)

            def send() -> None:
                for s in ours:
                    try:  # noqa: SIM105
                        s.send(PACKET)
                    except OSError:
                        pass
        else:

            def send() -> None:
                for s, a in zip(ours, peers, strict=True):
                    try:  # noqa: SIM105
                        s.sendto(PACKET, a)
                    except OSError:
                        pass

        connected = mode == "connected"
        _paced(ours, send, 1.0, connected)  # warm-up
        r0 = resource.getrusage(resource.RUSAGE_SELF)
        ticks = _paced(ours, send, seconds, connected)
        r1 = resource.getrusage(resource.RUSAGE_SELF)
    finally:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        for s in ours + theirs:
            s.close()
    return r1.ru_utime - r0.ru_utime, r1.ru_stime - r0.ru_stime, ticks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=150)
    parser.add_argument("--legs", type=int, default=3, help="legs per call (3: a three-way call)")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds of both ways")
    args = parser.parse_args()
    legs = args.calls * args.legs
    print(f"socket floor: {args.calls} calls x {args.legs} legs, {args.seconds:.0f} s per run, "
          f"load {os.getloadavg()[0]:.2f}, python {sys.version.split()[0]}")  # fmt: skip
    print("| way | round | ticks | user µs | system µs | total µs per call per tick |")
    print("|---|---|---|---|---|---|")
    for rnd in range(1, args.rounds + 1):
        for mode in ("sendto/recvfrom", "connected"):
            user, system, ticks = measure(legs, mode, args.seconds)
            per = 1e6 / (ticks * args.calls)
            print(f"| {mode} | {rnd} | {ticks} | {user * per:.1f} | {system * per:.1f} | "
                  f"{(user + system) * per:.1f} |", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
