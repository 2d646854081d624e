"""Ports for our own UAs in tests: kernel-chosen, free on both UDP and TCP.

The lab's allocator (lab.ports) has a small pool shared by every test process on the machine
and keeps released blocks in quarantine; the SIP suite starts a few hundred of its own UAs, so
they take ports the kernel hands out instead and leave the lab's pool to the lab's peers.
"""

from __future__ import annotations

import socket


def sip_port() -> int:
    """A port free on 127.0.0.1 for UDP and TCP at the time of the call."""
    for _ in range(100):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.bind(("127.0.0.1", 0))
            port = int(udp.getsockname()[1])
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
                tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                try:
                    tcp.bind(("127.0.0.1", port))
                except OSError:
                    continue
                return port
    raise RuntimeError("no port free on both UDP and TCP")
