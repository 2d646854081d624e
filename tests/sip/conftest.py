"""Fixtures for the SIP tests: the lab's peers and a factory of our own user agents.

pytest refuses ``pytest_plugins`` in a non-root conftest, so the lab fixtures are imported
(the lead may move ``pytest_plugins = ["lab.pytest_plugin"]`` into tests/conftest.py).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from lab.kamailio import Kamailio
from lab.pytest_plugin import (  # noqa: F401
    kamailio,
    kamailio_401,
    kamailio_factory,
    lab_dir,
    lab_users,
    phone_factory,
    sipp_factory,
)
from telephony.sip.ua import UAConfig, UserAgent

from .ports import sip_port

UAFactory = Callable[..., Awaitable[UserAgent]]


@pytest.fixture
async def ua_factory() -> AsyncIterator[UAFactory]:
    """`await ua_factory(kamailio, user="1000", **UAConfig fields)`: a started UA, stopped after."""
    started: list[UserAgent] = []

    async def make(k: Kamailio | None = None, *, start: bool = True, **kwargs: Any) -> UserAgent:
        user = kwargs.pop("user", "1000")
        transport = kwargs.get("transport", "udp")
        registrar = None
        if k is not None:
            registrar = ("127.0.0.1", k.tcp_port if transport == "tcp" else k.udp_port)
        cfg = UAConfig(
            listen_host="127.0.0.1",
            listen_port=kwargs.pop("listen_port", sip_port()),
            registrar=kwargs.pop("registrar", registrar),
            user=user,
            password=kwargs.pop("password", f"pw{user}"),
            **kwargs,
        )
        ua = UserAgent(cfg)
        started.append(ua)
        if start:
            await ua.start()
        return ua

    try:
        yield make
    finally:
        for ua in reversed(started):
            await ua.stop()
