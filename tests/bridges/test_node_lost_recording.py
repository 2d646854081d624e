"""A lost node's partial recording with shared storage (issue 16): two nodes on one PostgreSQL
whose recordings directories are one directory; node A records a three-way call and is
SIGKILLed mid-call; node B declares it lost, ends the call and seals A's recording from the
shared storage; the audio downloads from B with the sealed hash; A, started again, leaves the
recording B sealed as it is."""

from __future__ import annotations

import hashlib
import io
import signal
import time
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from lab import ports
from lab.baresip import BaresipPhone
from lab.kamailio import Kamailio
from tests.bridges.conftest import NODE_LEASE_S as LEASE_S
from tests.bridges.conftest import cli_auth
from tests.bridges.test_crash import TONES, USERS, ServiceProcess

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def shared_recordings(env: dict[str, str], shared: Path) -> None:
    """The node's data directory with `recordings` a link to the shared directory."""
    data = Path(env["LINKCALL_DATA_DIR"])
    data.mkdir(parents=True, exist_ok=True)
    (data / "recordings").symlink_to(shared, target_is_directory=True)


def get(base: str, path: str, auth: dict[str, str]) -> Any:
    resp = httpx.get(f"{base}{path}", headers=auth, timeout=15)
    assert resp.status_code == 200, resp.text
    return resp.json()


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_survivor_seals_a_lost_node_s_recording_from_shared_storage(
    node_env: Callable[[str, int], dict[str, str]],
    phone_factory: Callable[..., BaresipPhone],
    tmp_path: Path,
) -> None:
    kam: Kamailio = node_env.kamailio  # type: ignore[attr-defined]
    phones = {r: phone_factory(USERS[r], tone_hz=TONES[r], kamailio=kam) for r in TONES}
    phones["unit"].press_on_answer("1")  # the unit confirms the call (LINKCALL_UNIT_CONFIRM)
    port_a, port_b = ports.sip_port(), ports.sip_port()  # free TCP ports for HTTP
    env_a, env_b = node_env("node-a", port_a), node_env("node-b", port_b)
    shared = tmp_path / "shared-recordings"
    shared.mkdir()
    for env in (env_a, env_b):
        shared_recordings(env, shared)
    auth = cli_auth(env_a, "supervisor")
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
            body = get(base_a, f"/api/v1/bridges/{bid}", auth)
        time.sleep(3.0)  # audio in the recording, flushed to disk, the dialogs stored
        rid = body["recording_id"]
        assert rid and get(base_b, f"/api/v1/recordings/{rid}", auth)["state"] == "recording"
        a.kill()  # SIGKILL mid-call: the recording is left unfinished on the shared disk
        killed = time.monotonic()

        # B declares A lost within the lease, ends the call and seals the recording
        rec = get(base_b, f"/api/v1/recordings/{rid}", auth)
        while rec["sha256"] is None:
            assert time.monotonic() - killed < LEASE_S + 10, rec
            time.sleep(0.3)
            rec = get(base_b, f"/api/v1/recordings/{rid}", auth)
        body = get(base_b, f"/api/v1/bridges/{bid}", auth)
        assert (body["state"], body["end_reason"]) == ("ended", "node_lost"), body
        assert rec["state"] == "interrupted", rec
        assert "finalised by node node-b from shared storage" in rec["error"], rec
        assert rec["duration_s"] >= 2.5, rec  # the audio up to the kill
        directory = next(shared.rglob("manifest.json")).parent
        assert directory.name == rid
        sums = (directory / "SHA256SUMS").read_bytes()
        assert hashlib.sha256(sums).hexdigest() == rec["sha256"]

        # the audio downloads from B with the sealed hash; the package carries the same sums
        for track in ("mixed", "caller", "dispatcher", "unit"):
            audio = httpx.get(
                f"{base_b}/api/v1/recordings/{rid}/audio", params={"track": track},
                headers=auth, timeout=30,
            )  # fmt: skip
            assert audio.status_code == 200, audio.text
            assert hashlib.sha256(audio.content).hexdigest() == rec["tracks"][track]["sha256"]
            assert len(audio.content) == rec["tracks"][track]["size_bytes"] > 44
        package = httpx.get(f"{base_b}/api/v1/recordings/{rid}/package", headers=auth, timeout=30)
        assert package.status_code == 200, package.text
        with zipfile.ZipFile(io.BytesIO(package.content)) as zf:
            for track, sealed in rec["tracks"].items():
                data = zf.read(f"{rid}/tracks/{track}.wav")
                assert hashlib.sha256(data).hexdigest() == sealed["sha256"], track
        assert f"recording {rid} of lost node node-a: sealed" in (tmp_path / "b.log").read_text()

        # A comes back on the same storage: the recording B sealed stays exactly as it is
        manifest = (directory / "manifest.json").read_bytes()
        a.start()
        time.sleep(1.0)
        assert get(base_a, f"/api/v1/recordings/{rid}", auth) == get(
            base_b, f"/api/v1/recordings/{rid}", auth
        )
        again = get(base_a, f"/api/v1/recordings/{rid}", auth)
        assert (again["sha256"], again["finalised_at"]) == (rec["sha256"], rec["finalised_at"])
        assert (directory / "manifest.json").read_bytes() == manifest
    finally:
        a.kill()
        b.kill(signal.SIGTERM)
