"""Two nodes on one PostgreSQL (issue 16's failure rule, issue 18's floor for a node that never
comes back): node A carries a recorded three-way call; leg controls sent to node B reach it; A is
SIGKILLed; B declares A lost once A's heartbeat is older than the lease, ends the call
`node_lost` and hangs up every phone."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from lab import ports
from lab.baresip import BaresipPhone
from lab.kamailio import Kamailio
from tests.bridges.conftest import NODE_LEASE_S as LEASE_S
from tests.bridges.conftest import cli_auth
from tests.bridges.test_crash import TONES, USERS, ServiceProcess

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_a_lost_node_s_call_is_ended_by_a_survivor_and_no_phone_is_left_in_it(
    node_env: Callable[[str, int], dict[str, str]],
    phone_factory: Callable[..., BaresipPhone],
    tmp_path: Path,
) -> None:
    kam: Kamailio = node_env.kamailio  # type: ignore[attr-defined]
    phones = {r: phone_factory(USERS[r], tone_hz=TONES[r], kamailio=kam) for r in TONES}
    phones["unit"].press_on_answer("1")  # the unit confirms the call (LINKCALL_UNIT_CONFIRM)
    port_a, port_b = ports.sip_port(), ports.sip_port()  # free TCP ports for HTTP
    env_a, env_b = node_env("node-a", port_a), node_env("node-b", port_b)
    auth = cli_auth(env_a, "dispatcher")
    a = ServiceProcess(env_a, port_a, tmp_path / "a.log")
    b = ServiceProcess(env_b, port_b, tmp_path / "b.log")
    try:
        a.start()
        b.start()
        base_a, base_b = f"http://127.0.0.1:{a.port}", f"http://127.0.0.1:{b.port}"
        body = httpx.post(
            f"{base_a}/api/v1/bridges", headers=auth, timeout=10,
            json={r: {"number": USERS[r]} for r in ("caller", "dispatcher", "unit")},
        ).json()  # fmt: skip
        bid = body["id"]
        deadline = time.monotonic() + 30
        while body["state"] != "connected" or any(
            leg["state"] != "connected" for leg in body["legs"]
        ):
            assert time.monotonic() < deadline, body
            time.sleep(0.2)
            body = httpx.get(f"{base_a}/api/v1/bridges/{bid}", headers=auth).json()
        # Any node serves the leg controls: B carries them to A and answers with A's result.
        for action, muted in (("mute", True), ("unmute", False)):
            r = httpx.post(
                f"{base_b}/api/v1/bridges/{bid}/legs/unit/{action}", headers=auth, timeout=15
            )
            assert r.status_code == 200, r.text
            assert next(g for g in r.json()["legs"] if g["role"] == "unit")["muted"] is muted
        assert "forwarded to node node-a: 200" in (tmp_path / "b.log").read_text()
        time.sleep(1.5)  # the dialogs are stored by A's call records' writer
        marks = {r: p.event_count() for r, p in phones.items()}
        a.kill()
        killed = time.monotonic()
        # B notices within the lease plus a heartbeat, and hangs every phone up.
        for role, phone in phones.items():
            left = LEASE_S + 6.0 - (time.monotonic() - killed)
            phone.wait_event("CALL_CLOSED", max(left, 0.1), marks[role])
        closed_after = time.monotonic() - killed
        assert closed_after <= LEASE_S + 6.0
        body = httpx.get(f"{base_b}/api/v1/bridges/{bid}", headers=auth).json()
        assert (body["state"], body["end_reason"], body["interrupted"]) == (
            "ended", "node_lost", True,
        ), body  # fmt: skip
        deadline = time.monotonic() + 5
        while any(leg["recovery"] in (None, "bye pending") for leg in body["legs"]):
            assert time.monotonic() < deadline, body["legs"]
            time.sleep(0.2)
            body = httpx.get(f"{base_b}/api/v1/bridges/{bid}", headers=auth).json()
        assert {leg["role"]: (leg["end_reason"], leg["recovery"]) for leg in body["legs"]} == {
            r: ("node_lost", "bye 200") for r in TONES
        }
        assert "node node-a lost" in (tmp_path / "b.log").read_text()
        # B itself keeps working: its heartbeat is fresh and it is ready.
        assert httpx.get(f"{base_b}/readyz", timeout=5).status_code == 200
    finally:
        a.kill()
        b.kill(signal.SIGTERM)
