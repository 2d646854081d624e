"""pytest fixtures for the SIP lab.

Load with ``pytest_plugins = ["lab.pytest_plugin"]`` in a conftest.py.

Fixtures:

* ``lab_dir`` (function): a fresh temporary directory for one test's peers.
* ``lab_users`` (session): the default accounts, user -> password (``pw<user>``):
  1000-1009 for our own UA / the service, 2001-2009 for phones.
* ``kamailio`` (module): a started Kamailio in the default mode (INVITE challenged with
  407, REGISTER with 401), shared by the tests of one module; stopped at module teardown.
* ``kamailio_401`` (module): the same in pyVoIP mode (everything 401, stateless).
* ``kamailio_factory`` (function): ``kamailio_factory(**Kamailio kwargs)`` starts a
  dedicated instance (``users`` defaults to ``lab_users``); all stopped at teardown.
* ``phone_factory`` (function): ``phone_factory("2001", tone_hz=400, auto_answer=True,
  kamailio=None, **BaresipPhone kwargs)`` starts a phone registered to ``kamailio``
  (the module instance unless given; pass ``kamailio=False`` for an unregistered phone)
  and waits for its registration; all phones stopped at teardown.
* ``sipp_factory`` (function): ``sipp_factory(scenario, **Sipp kwargs)`` builds (not
  starts) a ``Sipp`` runner; all runners stopped at teardown.

Every process is stopped by PID in the finalizers, also when the test failed. Tests
skip (not fail) when kamailio / baresip / sipp are not installed or we are not root,
except under CI (``CI`` set), where a missing tool is an error.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from lab.baresip import BaresipPhone
from lab.kamailio import Kamailio
from lab.session import default_users
from lab.sipp import Sipp

HOST = "127.0.0.1"


def _require(*tools: str) -> None:
    missing = [t for t in tools if shutil.which(t) is None]
    reason = ""
    if missing:
        reason = f"lab tool(s) not installed: {', '.join(missing)}"
    elif "kamailio" in tools and os.geteuid() != 0:
        reason = "the lab's kamailio must run as root"
    if reason:
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)


def _keep_dir(tmp: Path) -> Path:
    tmp.mkdir(parents=True, exist_ok=True)
    return tmp


@pytest.fixture
def lab_dir(tmp_path: Path) -> Path:
    return _keep_dir(tmp_path / "lab")


@pytest.fixture(scope="session")
def lab_users() -> dict[str, str]:
    return default_users()


def _module_kamailio(
    tmp_path_factory: pytest.TempPathFactory, users: dict[str, str], **kwargs: Any
) -> Iterator[Kamailio]:
    _require("kamailio", "kamcmd")
    k = Kamailio(tmp_path_factory.mktemp("kamailio"), users, **kwargs)
    try:
        k.start()
        yield k
    finally:
        k.stop()


@pytest.fixture(scope="module")
def kamailio(
    tmp_path_factory: pytest.TempPathFactory, lab_users: dict[str, str]
) -> Iterator[Kamailio]:
    yield from _module_kamailio(tmp_path_factory, lab_users, invite_auth="407")


@pytest.fixture(scope="module")
def kamailio_401(
    tmp_path_factory: pytest.TempPathFactory, lab_users: dict[str, str]
) -> Iterator[Kamailio]:
    yield from _module_kamailio(tmp_path_factory, lab_users, invite_auth="401")


@pytest.fixture
def kamailio_factory(lab_dir: Path, lab_users: dict[str, str]) -> Iterator[Callable[..., Kamailio]]:
    started: list[Kamailio] = []

    def make(**kwargs: Any) -> Kamailio:
        _require("kamailio", "kamcmd")
        kwargs.setdefault("users", lab_users)
        k = Kamailio(lab_dir / f"kamailio-{len(started)}", **kwargs)
        started.append(k)
        k.start()
        return k

    try:
        yield make
    finally:
        for k in reversed(started):
            k.stop()


@pytest.fixture
def phone_factory(
    request: pytest.FixtureRequest, lab_dir: Path, lab_users: dict[str, str]
) -> Iterator[Callable[..., BaresipPhone]]:
    started: list[BaresipPhone] = []

    def make(
        user: str,
        tone_hz: float | None = None,
        auto_answer: bool = True,
        kamailio: Kamailio | bool | None = None,
        password: str | None = None,
        wait_registered: bool = True,
        **kwargs: Any,
    ) -> BaresipPhone:
        _require("baresip")
        if kamailio is None or kamailio is True:
            kamailio = request.getfixturevalue("kamailio")
        if isinstance(kamailio, Kamailio):
            # a module-scoped Kamailio may still hold a binding of an earlier test's phone
            kamailio.unregister(user)
            reg_host: str | None = HOST
            reg_port: int | None = kamailio.udp_port
            kwargs.setdefault("domain", kamailio.domain)
        else:
            reg_host = reg_port = None
        if password is None:
            password = lab_users.get(user)
        phone = BaresipPhone(
            lab_dir,
            user,
            password,
            reg_host,
            reg_port,
            tone_hz=tone_hz,
            auto_answer=auto_answer,
            **kwargs,
        )
        started.append(phone)
        phone.start()
        if wait_registered and reg_host is not None:
            phone.wait_registered()
        return phone

    try:
        yield make
    finally:
        for p in reversed(started):
            p.stop()


@pytest.fixture
def sipp_factory(lab_dir: Path) -> Iterator[Callable[..., Sipp]]:
    made: list[Sipp] = []

    def make(scenario: str | Path, **kwargs: Any) -> Sipp:
        _require("sipp")
        s = Sipp(lab_dir / f"sipp-{len(made)}", scenario, **kwargs)
        made.append(s)
        return s

    try:
        yield make
    finally:
        for s in reversed(made):
            s.stop()
