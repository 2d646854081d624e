"""Two nodes on one PostgreSQL (issue 16): node B's event stream carries the legs of a bridge
node A runs, live and replayed after Last-Event-ID from the stored stream; the bridge is ended
through B; its recording, made on A's disk, downloads from B (proxied from A, audited once, by A)
with the sealed SHA-256; once A is gone the download answers 503."""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from lab import ports
from lab.baresip import BaresipPhone
from storage import audit
from storage.engine import make_engine, make_session_factory, session_scope
from tests.bridges.conftest import cli_auth
from tests.bridges.test_crash import TONES, USERS, ServiceProcess

pytestmark = [pytest.mark.integration, pytest.mark.slow]

Event = tuple[int, str, dict[str, object]]


def read_events(
    url: str,
    headers: dict[str, str],
    out: list[Event],
    done: Callable[[list[Event]], bool],
    timeout_s: float,
) -> None:
    """Append the stream's events to `out` until `done(out)` or the deadline."""
    deadline = time.monotonic() + timeout_s
    with httpx.stream("GET", url, headers=headers, timeout=timeout_s) as resp:
        assert resp.status_code == 200, resp.read()
        buffer = ""
        for chunk in resp.iter_text():
            buffer += chunk
            while "\n\n" in buffer:
                block, buffer = buffer.split("\n\n", 1)
                fields = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
                if "event" in fields:
                    out.append((int(fields["id"]), fields["event"], json.loads(fields["data"])))
            if done(out) or time.monotonic() > deadline:
                return


def upto_end(events: list[Event], bid: str) -> list[Event]:
    """The bridge's events up to and including its call.state ended."""
    out: list[Event] = []
    for event in events:
        if event[2].get("call_id") == bid:
            out.append(event)
            if event[1] == "call.state" and event[2].get("state") == "ended":
                return out
    return out


def bridge_ended(bid: str) -> Callable[[list[Event]], bool]:
    def done(events: list[Event]) -> bool:
        return any(
            t == "call.state" and d.get("call_id") == bid and d.get("state") == "ended"
            for _, t, d in events
        )

    return done


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_b_streams_a_s_bridge_and_serves_its_recording(
    node_env: Callable[[str, int], dict[str, str]],
    phone_factory: Callable[..., BaresipPhone],
    migrated_url: str,
    tmp_path: Path,
) -> None:
    kam = node_env.kamailio  # type: ignore[attr-defined]
    phones = {r: phone_factory(USERS[r], tone_hz=TONES[r], kamailio=kam) for r in TONES}
    phones["unit"].press_on_answer("1")  # the unit confirms the call (LINKCALL_UNIT_CONFIRM)
    port_a, port_b = ports.sip_port(), ports.sip_port()  # free TCP ports for HTTP
    env_a, env_b = node_env("node-a", port_a), node_env("node-b", port_b)
    auth = cli_auth(env_a, "supervisor")
    a = ServiceProcess(env_a, port_a, tmp_path / "a.log")
    b = ServiceProcess(env_b, port_b, tmp_path / "b.log")
    try:
        a.start()
        b.start()
        base_a, base_b = f"http://127.0.0.1:{a.port}", f"http://127.0.0.1:{b.port}"
        live: list[Event] = []
        holder: dict[str, str] = {}

        def done(events: list[Event]) -> bool:
            return "id" in holder and bridge_ended(holder["id"])(events)

        reader = threading.Thread(
            target=read_events, args=(f"{base_b}/api/v1/events", auth, live, done, 90),
            daemon=True,
        )  # fmt: skip
        reader.start()
        time.sleep(1.0)  # B's stream is open before A starts the bridge
        body = httpx.post(
            f"{base_a}/api/v1/bridges", headers=auth, timeout=10,
            json={r: {"number": USERS[r]} for r in ("caller", "dispatcher", "unit")},
        ).json()  # fmt: skip
        bid = holder["id"] = body["id"]
        deadline = time.monotonic() + 30
        while body["state"] != "connected" or any(
            leg["state"] != "connected" for leg in body["legs"]
        ):
            assert time.monotonic() < deadline, body
            time.sleep(0.2)
            body = httpx.get(f"{base_b}/api/v1/bridges/{bid}", headers=auth).json()
        time.sleep(2.0)  # a little audio in the recording
        r = httpx.post(f"{base_b}/api/v1/bridges/{bid}/end", headers=auth, timeout=15)
        assert r.status_code == 200, r.text
        reader.join(20)
        assert not reader.is_alive(), live
        ours = upto_end(live, bid)
        # B's live stream shows every leg of A's bridge connecting, and the end, in id order
        connected = {
            d["role"] for _, t, d in ours if t == "leg.state" and d["state"] == "connected"
        }
        assert connected == set(TONES), ours
        assert [e[0] for e in live] == sorted(e[0] for e in live)
        assert ours[-1][1] == "call.state" and ours[-1][2]["state"] == "ended", ours
        # a client of B resuming after the bridge's first event gets the rest from the table
        replay: list[Event] = []
        read_events(
            f"{base_b}/api/v1/events", {**auth, "Last-Event-ID": str(ours[0][0])}, replay,
            bridge_ended(bid), 20,
        )  # fmt: skip
        assert upto_end(replay, bid) == ours[1:]
        # ... and so does a client of A: one stream, one order
        on_a: list[Event] = []
        read_events(
            f"{base_a}/api/v1/events", {**auth, "Last-Event-ID": str(ours[0][0])}, on_a,
            bridge_ended(bid), 20,
        )  # fmt: skip
        assert upto_end(on_a, bid) == ours[1:]

        # The recording is on A's disk; B serves it, proxied from A, sealed hash intact.
        rid = httpx.get(f"{base_b}/api/v1/bridges/{bid}", headers=auth).json()["recording_id"]
        assert rid
        deadline = time.monotonic() + 20
        rec = httpx.get(f"{base_b}/api/v1/recordings/{rid}", headers=auth).json()
        while rec["state"] != "finalised":
            assert time.monotonic() < deadline, rec
            time.sleep(0.3)
            rec = httpx.get(f"{base_b}/api/v1/recordings/{rid}", headers=auth).json()
        assert list((tmp_path / "node-a" / "recordings").rglob("*.wav"))  # on A's disk
        assert not list((tmp_path / "node-b" / "recordings").rglob("*.wav"))  # none on B's
        audio = httpx.get(
            f"{base_b}/api/v1/recordings/{rid}/audio", params={"track": "mixed"}, headers=auth,
            timeout=30,
        )  # fmt: skip
        assert audio.status_code == 200, audio.text
        assert audio.headers["content-type"] == "audio/wav"
        assert len(audio.content) == rec["tracks"]["mixed"]["size_bytes"] > 44
        assert hashlib.sha256(audio.content).hexdigest() == rec["tracks"]["mixed"]["sha256"]
        part = httpx.get(
            f"{base_b}/api/v1/recordings/{rid}/audio", headers={**auth, "Range": "bytes=0-99"},
            timeout=30,
        )  # fmt: skip
        assert part.status_code == 206 and part.content == audio.content[:100]
        package = httpx.get(f"{base_b}/api/v1/recordings/{rid}/package", headers=auth, timeout=30)
        assert package.status_code == 200, package.text
        assert package.headers["content-type"] == "application/zip"
        assert "proxied from node node-a: 200" in (tmp_path / "b.log").read_text()
        # each access audited once (by A, which served the bytes), none twice
        engine = make_engine(migrated_url)
        with session_scope(make_session_factory(engine)) as session:
            actions = [e.action for e in audit.entries_for(session, "recording", rid)]
        engine.dispose()
        assert actions.count("recording.audio") == 2, actions
        assert actions.count("recording.package") == 1, actions

        # A gone: B says the node holding the files cannot be reached.
        a.kill()
        gone = httpx.get(f"{base_b}/api/v1/recordings/{rid}/audio", headers=auth, timeout=30)
        assert gone.status_code == 503, gone.text
        assert gone.headers["content-type"].startswith("application/problem+json")
        assert "node-a" in gone.json()["detail"]
    finally:
        a.kill()
        b.kill()
