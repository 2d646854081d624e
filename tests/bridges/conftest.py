"""A running linkcall service registered to the lab's Kamailio, with a busy SIPp trunk peer.

Numbers 3xxx go from Kamailio to a SIPp rejecter answering 486 Busy Here; 2xxx are baresip phones.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from lab import ports
from lab.baresip import BaresipPhone
from lab.kamailio import Kamailio
from lab.sipp import Sipp
from tests.conftest import LiveService, run_live_app, service_settings

BUSY_NUMBER = "3001"
NODE_LEASE_S = 3.0  # node_env: a node silent this long is declared lost
SEATS = ("2002", "2004")  # dispatcher seats rung for calls to the service (user 1000)


@dataclass
class BridgeLab:
    """The service (HTTP), its Kamailio and a busy trunk peer."""

    live: LiveService
    kamailio: Kamailio
    http: httpx.Client
    phone_factory: Callable[..., BaresipPhone]

    def phone(self, user: str, **kw: Any) -> BaresipPhone:
        """A baresip phone registered to this lab's Kamailio."""
        return self.phone_factory(user, kamailio=self.kamailio, **kw)

    def post(self, path: str, role: str = "dispatcher", **kw: Any) -> httpx.Response:
        return self.http.post(path, headers={**self.live.auth(role), **kw.pop("headers", {})}, **kw)

    def get(self, path: str, role: str = "dispatcher", **kw: Any) -> httpx.Response:
        return self.http.get(path, headers={**self.live.auth(role), **kw.pop("headers", {})}, **kw)

    def wait_bridge(
        self, bridge_id: str, pred: Callable[[dict[str, Any]], bool], timeout: float = 30.0
    ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        body: dict[str, Any] = {}
        while time.monotonic() < deadline:
            body = self.get(f"/api/v1/bridges/{bridge_id}").json()
            if pred(body):
                return body
            time.sleep(0.2)
        raise AssertionError(f"bridge never got there: {body}")


def cli_token(env: dict[str, str], role: str) -> str:
    """A bearer token made as an operator makes one: `linkcall tokens create` with the
    service's environment (the lab services run as separate processes)."""
    out = subprocess.run(
        [sys.executable, "-m", "api", "tokens", "create", "--role", role],
        env=env, capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    return out.strip().splitlines()[-1]


def cli_auth(env: dict[str, str], role: str) -> dict[str, str]:
    """The Authorization header of a new `role` token (`cli_token`)."""
    return {"Authorization": f"Bearer {cli_token(env, role)}"}


def leg(body: dict[str, Any], role: str) -> dict[str, Any]:
    return next(x for x in body["legs"] if x["role"] == role)


@contextlib.contextmanager
def live_lab(
    tmp_path: Path,
    kam: Kamailio,
    lab_users: dict[str, str],
    phone_factory: Callable[..., BaresipPhone],
    **overrides: object,
) -> Iterator[BridgeLab]:
    """The service registered as 1000 to `kam`, with short lab timeouts (and `overrides`)."""
    values: dict[str, object] = {
        "sip_registrar": f"127.0.0.1:{kam.udp_port}",
        "sip_trunk_peer": "",
        "sip_user": "1000",
        "sip_password": lab_users["1000"],
        "ring_timeout_unit_s": 4.0,
        "ring_timeout_caller_s": 15.0,
        "ring_timeout_dispatcher_s": 15.0,
        "duty_check_ring_timeout_s": 5.0,
        "dispatcher_seats": ",".join(SEATS),
        "inbound_ring_deadline_s": 20.0,
        "media_timeout_s": 4.0,
    }
    values.update(overrides)
    settings = service_settings(tmp_path, **values)
    with (
        run_live_app(settings) as live,
        httpx.Client(base_url=live.base_url, timeout=30) as http,
    ):
        lab = BridgeLab(live, kam, http, phone_factory)
        deadline = time.monotonic() + 15
        while not kam.registered("1000"):
            assert time.monotonic() < deadline, "service never registered"
            time.sleep(0.2)
        yield lab


@pytest.fixture
def bridge_lab(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    kamailio_factory: Callable[..., Kamailio],
    lab_users: dict[str, str],
    phone_factory: Callable[..., BaresipPhone],
) -> Iterator[BridgeLab]:
    """The lab of issue 5: units join as they answer (no key press asked: LINKCALL_UNIT_CONFIRM
    off; tests/bridges/test_unit_phone_lab.py covers the confirmation)."""
    sipp_port = ports.sip_port()
    rejecter = Sipp.rejecter(tmp_path / "busy", code=486, port=sipp_port)
    kam = kamailio_factory(trunk_regex="^3[0-9]{3}$", trunk_target=("127.0.0.1", sipp_port))
    rejecter.start()
    # overrides: parametrize("bridge_lab", [{name: value, or f(request) giving it}], indirect)
    params = getattr(request, "param", {})
    # the lab places twenty bridges at once from one token to measure concurrency; the dial
    # rate limit has its own tests (tests/api/test_http_edge.py)
    overrides: dict[str, object] = {"unit_confirm": False, "dial_rate": "off"}
    overrides.update({k: v(request) if callable(v) else v for k, v in params.items()})
    try:
        with live_lab(tmp_path, kam, lab_users, phone_factory, **overrides) as lab:
            yield lab
    finally:
        rejecter.stop()


@pytest.fixture
def node_env(
    migrated_url: str,
    tmp_path: Path,
    kamailio_factory: Callable[..., Kamailio],
    lab_users: dict[str, str],
) -> Iterator[Callable[[str, int], dict[str, str]]]:
    """`env_for(name, http_port)`: the environment of one node on the test's PostgreSQL,
    registered to one lab Kamailio (`env_for.kamailio`), heartbeat 0.5 s, lease NODE_LEASE_S."""
    kam = kamailio_factory()
    ranges: list[ports.RtpRange] = []

    def env_for(name: str, http_port: int) -> dict[str, str]:
        rtp = ports.rtp_range(100)
        ranges.append(rtp)
        return {
            **os.environ,
            "LINKCALL_DATABASE_URL": migrated_url,
            "LINKCALL_DATA_DIR": str(tmp_path / name),
            "LINKCALL_SIP_LISTEN": f"127.0.0.1:{ports.sip_port()}",
            "LINKCALL_SIP_REGISTRAR": f"127.0.0.1:{kam.udp_port}",
            "LINKCALL_SIP_USER": "1000",
            "LINKCALL_SIP_PASSWORD": lab_users["1000"],
            "LINKCALL_RTP_PORTS": f"{rtp.lo}-{rtp.hi}",
            "LINKCALL_NODE_NAME": name,
            "LINKCALL_NODE_URL": f"http://127.0.0.1:{http_port}",
            "LINKCALL_NODE_HEARTBEAT_S": "0.5",
            "LINKCALL_NODE_LEASE_S": str(NODE_LEASE_S),
        }

    env_for.kamailio = kam  # type: ignore[attr-defined]
    yield env_for
    for rtp in ranges:
        ports.release(rtp)
