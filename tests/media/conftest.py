"""Fixtures for the media engine tests: a started engine on loopback with free ports."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator

import pytest

from telephony.media import MediaEngine


def _free_range(size: int = 200) -> tuple[int, int]:
    """An even-aligned port range whose first port is free now (ports are probed again on bind)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    lo = max(1024, min(port, 65535 - size)) & ~1
    return lo, lo + size - 1


@pytest.fixture
async def engine() -> AsyncIterator[MediaEngine]:
    eng = MediaEngine(host="127.0.0.1", port_range=_free_range())
    await eng.start()
    try:
        yield eng
    finally:
        await eng.stop()
