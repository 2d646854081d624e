"""Fixtures for the media engine tests: a started engine on loopback with a leased port range."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from lab import ports
from telephony.media import MediaEngine


@pytest.fixture
async def engine() -> AsyncIterator[MediaEngine]:
    rtp = ports.rtp_range(40)  # up to 20 legs
    eng = MediaEngine(host="127.0.0.1", port_range=(rtp.lo, rtp.hi))
    await eng.start()
    try:
        yield eng
    finally:
        await eng.stop()
        ports.release(rtp)
