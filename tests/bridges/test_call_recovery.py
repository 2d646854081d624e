"""A crash no caller notices for long (issue 18): `kill -9` of the service mid-call, a restart,
and the three parties hear each other again within 5 s of the service being up; the recording
goes on as a second sealed segment. Over UDP and over TCP. A unit still ringing at the kill is
CANCELled (its phone stops ringing) while the others are carried on."""

from __future__ import annotations

import hashlib
import os
import signal
import time
import wave
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from lab import ports
from lab.audio import tone_report
from lab.baresip import BaresipPhone
from lab.kamailio import Kamailio
from tests.bridges.conftest import cli_auth
from tests.bridges.test_crash import ServiceProcess

pytestmark = [pytest.mark.integration, pytest.mark.slow]

TONES = {"caller": 400.0, "dispatcher": 1000.0, "unit": 1800.0}
USERS = {"caller": "2001", "dispatcher": "2002", "unit": "2003"}
HEARD_MIN_DB = -30.0
SILENT_MAX_DB = -50.0


class Lab:
    def __init__(self, env: dict[str, str], kam: Kamailio, tmp: Path, transport: str) -> None:
        self.env, self.kam, self.tmp, self.transport = env, kam, tmp, transport
        self.auth = cli_auth(env, "dispatcher")
        self.supervisor = cli_auth(env, "supervisor")
        port = ports.sip_port()  # a free TCP port for HTTP
        self.base = f"http://127.0.0.1:{port}"
        self.service = ServiceProcess(env, port, tmp / "service.log")

    def start_bridge(self) -> str:
        """Start the service, then a three-way call to the lab phones; its id."""
        self.service.start()
        created = httpx.post(
            f"{self.base}/api/v1/bridges", headers=self.auth, timeout=10,
            json={r: {"number": USERS[r]} for r in TONES},
        )  # fmt: skip
        assert created.status_code == 202, created.text
        return str(created.json()["id"])

    def get(self, path: str) -> Any:
        return httpx.get(f"{self.base}{path}", headers=self.auth, timeout=10).json()

    def wait(self, bid: str, ok: Callable[[Any], bool], seconds: float, what: str) -> Any:
        deadline = time.monotonic() + seconds
        body = self.get(f"/api/v1/bridges/{bid}")
        while not ok(body):
            assert time.monotonic() < deadline, f"{what}: {body}"
            time.sleep(0.1)
            body = self.get(f"/api/v1/bridges/{bid}")
        return body


@pytest.fixture
def lab_factory(
    tmp_path: Path, kamailio_factory: Callable[..., Kamailio], lab_users: dict[str, str]
) -> Iterator[Callable[..., Lab]]:
    made: list[tuple[Lab, ports.RtpRange]] = []

    def make(transport: str, media_workers: int = 1) -> Lab:
        kam = kamailio_factory()
        rtp = ports.rtp_range(100)
        registrar = kam.tcp_port if transport == "tcp" else kam.udp_port
        env = {
            **os.environ,
            "LINKCALL_DATA_DIR": str(tmp_path / "data"),
            "LINKCALL_SIP_LISTEN": f"127.0.0.1:{ports.sip_port()}",
            "LINKCALL_SIP_TRANSPORT": transport,
            "LINKCALL_SIP_REGISTRAR": f"127.0.0.1:{registrar}",
            "LINKCALL_SIP_USER": "1000",
            "LINKCALL_SIP_PASSWORD": lab_users["1000"],
            "LINKCALL_RTP_PORTS": f"{rtp.lo}-{rtp.hi}",
            "LINKCALL_NODE_NAME": "node-a",
            "LINKCALL_RECOVER_CALLS": "true",
            "LINKCALL_MEDIA_WORKERS": str(media_workers),
        }
        env.pop("LINKCALL_DATABASE_URL", None)
        lab = Lab(env, kam, tmp_path, transport)
        made.append((lab, rtp))
        return lab

    try:
        yield make
    finally:
        for lab, rtp in made:
            lab.service.kill(signal.SIGTERM)
            ports.release(rtp)


def _phones(
    lab: Lab, factory: Callable[..., BaresipPhone], *, unit_answers: bool = True
) -> dict[str, BaresipPhone]:
    phones = {
        r: factory(
            USERS[r],
            tone_hz=TONES[r],
            kamailio=lab.kam,
            transport=lab.transport,
            auto_answer=unit_answers or r != "unit",
        )
        for r in TONES
    }
    if unit_answers:
        phones["unit"].press_on_answer("1")  # the unit confirms the call
    return phones


def _wav_seconds(path: Path) -> float:
    with wave.open(str(path)) as w:
        return w.getnframes() / w.getframerate()


def _all_connected(body: Any) -> bool:
    return (
        body["state"] == "connected"
        and body["recording_id"] is not None
        and all(leg["state"] == "connected" for leg in body["legs"])
    )


@pytest.mark.parametrize(
    ("transport", "media_workers"),
    [("udp", 1), ("tcp", 1), ("udp", 2)],  # 2: recordings held by media worker processes
)
def test_after_a_crash_the_three_parties_hear_each_other_again(
    transport: str,
    media_workers: int,
    lab_factory: Callable[..., Lab],
    phone_factory: Callable[..., BaresipPhone],
    tmp_path: Path,
) -> None:
    lab = lab_factory(transport, media_workers)
    phones = _phones(lab, phone_factory)
    bid = lab.start_bridge()
    lab.wait(bid, _all_connected, 30, "not connected")
    time.sleep(3.0)
    marks = {r: p.event_count() for r, p in phones.items()}
    killed = time.monotonic()
    lab.service.kill()
    time.sleep(1.0)
    for role, phone in phones.items():  # still in the call, in silence
        assert phone.call_count() == 1, (role, phone.list_calls())

    lab.service.start()
    ready = time.monotonic()
    body = lab.wait(bid, lambda b: b["resumed_at"] is not None, 5.0, "not carried on in 5 s")
    resumed = time.monotonic()
    gap = datetime.fromisoformat(body["resumed_at"]) - datetime.fromisoformat(
        body["gap_started_at"]
    )
    print(
        f"[{lab.transport}] kill -> ready {ready - killed:.1f} s, ready -> resumed "
        f"{resumed - ready:.1f} s; silence on the call's clock {gap.total_seconds():.1f} s"
    )
    assert body["state"] == "connected" and body["interrupted"] is True, body
    assert {leg["role"]: leg["recovery"] for leg in body["legs"]} == {
        r: "reinvite 200" for r in TONES
    }
    for role, phone in phones.items():  # the same call goes on: nobody was hung up
        assert phone.call_count() == 1, (role, phone.list_calls())
        assert "CALL_CLOSED" not in [e.get("type") for e in phone.events[marks[role] :]], role

    time.sleep(4.0)  # the parties talk again
    ended = httpx.post(f"{lab.base}/api/v1/bridges/{bid}/end", headers=lab.auth, timeout=10)
    assert ended.status_code == 200, ended.text
    body = lab.wait(bid, lambda b: b["state"] == "ended", 10, "not ended")
    assert body["end_reason"] == "ended_by_request", body

    for role, phone in phones.items():
        phone.wait_event("CALL_CLOSED", 10, marks[role])
        phone.wait_recordings_complete(5)
        heard = phone.received_recordings()[-1]
        end = _wav_seconds(heard) - 0.5
        levels = tone_report(heard, TONES.values(), start=end - 3.0, end=end)
        for other, hz in TONES.items():
            if other != role:
                assert levels[hz] > HEARD_MIN_DB, f"{role} misses {other} after: {levels}"
            else:
                assert levels[hz] < SILENT_MAX_DB, f"{role} hears itself: {levels}"

    # two segments, both sealed: the first up to the kill, the second from the recovery
    assert len(body["recordings"]) == 2 and body["recordings"][0] == body["recording_id"], body
    deadline = time.monotonic() + 10
    metas = [lab.get(f"/api/v1/recordings/{rid}") for rid in body["recordings"]]
    while metas[1]["state"] == "recording" and time.monotonic() < deadline:
        time.sleep(0.2)
        metas[1] = lab.get(f"/api/v1/recordings/{body['recordings'][1]}")
    first, second = metas
    assert (first["segment"], first["state"]) == (1, "interrupted"), first
    assert (second["segment"], second["state"]) == (2, "finalised"), second
    assert second["health"]["ok"], second["health"]
    assert first["duration_s"] >= 2.5 and second["duration_s"] >= 3.5, (first, second)
    listed = httpx.get(f"{lab.base}/api/v1/recordings", headers=lab.supervisor, timeout=10).json()
    assert {r["id"]: r["segment"] for r in listed if r["call_id"] == bid} == {
        first["id"]: 1,
        second["id"]: 2,
    }
    for meta in metas:
        for role, hz in TONES.items():
            wav = httpx.get(
                f"{lab.base}/api/v1/recordings/{meta['id']}/audio",
                params={"track": role}, headers=lab.auth, timeout=10,
            )  # fmt: skip
            assert wav.status_code == 200
            assert hashlib.sha256(wav.content).hexdigest() == meta["tracks"][role]["sha256"]
            track = tmp_path / f"{meta['segment']}-{role}.wav"
            track.write_bytes(wav.content)
            assert tone_report(track, [hz], start=1.0)[hz] > HEARD_MIN_DB, (meta["id"], role)


def test_a_unit_still_ringing_at_the_crash_is_cancelled_and_the_others_go_on(
    lab_factory: Callable[..., Lab], phone_factory: Callable[..., BaresipPhone]
) -> None:
    lab = lab_factory("udp")
    phones = _phones(lab, phone_factory, unit_answers=False)
    bid = lab.start_bridge()

    def two_up_unit_ringing(b: Any) -> bool:
        legs = {leg["role"]: leg for leg in b["legs"]}
        return b["state"] == "connected" and legs["unit"]["state"] == "dialing"

    lab.wait(bid, two_up_unit_ringing, 30, "caller and dispatcher not connected")
    phones["unit"].wait_incoming(10)
    time.sleep(1.5)  # the ringing INVITE's CANCEL is stored by the writer
    mark = phones["unit"].event_count()
    lab.service.kill()
    time.sleep(1.0)
    assert phones["unit"].call_count() == 1  # still ringing: nobody told it

    lab.service.start()
    ready = time.monotonic()
    phones["unit"].wait_event("CALL_CLOSED", 5.0, mark)
    print(f"ringing unit cancelled {time.monotonic() - ready:.1f} s after the restart")
    body = lab.wait(
        bid,
        lambda b: (
            b["resumed_at"] is not None
            and {leg["role"]: leg["recovery"] for leg in b["legs"]}.get("unit") == "cancel 200"
        ),
        5.0,
        "not carried on / unit not cancelled",
    )
    legs = {leg["role"]: leg for leg in body["legs"]}
    assert legs["unit"]["end_reason"] == "interrupted", legs["unit"]
    assert legs["caller"]["recovery"] == legs["dispatcher"]["recovery"] == "reinvite 200"
    assert body["state"] == "connected", body
    for role in ("caller", "dispatcher"):
        assert phones[role].call_count() == 1, role


def test_when_only_one_party_is_still_there_the_call_ends_and_that_party_is_hung_up(
    lab_factory: Callable[..., Lab], phone_factory: Callable[..., BaresipPhone]
) -> None:
    """The dispatcher and the unit hang up while the service is down: the caller's dialog is
    carried on, but alone, so the caller is hung up and the call ends `interrupted`."""
    lab = lab_factory("udp")
    phones = _phones(lab, phone_factory)
    bid = lab.start_bridge()
    lab.wait(bid, _all_connected, 30, "not connected")
    time.sleep(1.5)
    mark = phones["caller"].event_count()
    lab.service.kill()
    for role in ("dispatcher", "unit"):
        phones[role].hangup()

    lab.service.start()
    ready = time.monotonic()
    phones["caller"].wait_event("CALL_CLOSED", 5.0 - (time.monotonic() - ready), mark)
    body = lab.wait(bid, lambda b: b["state"] == "ended", 5.0, "not ended")
    assert body["end_reason"] == "interrupted" and body["resumed_at"] is None, body
    recovery = {leg["role"]: leg["recovery"] for leg in body["legs"]}
    assert recovery["caller"] == "reinvite 200, then alone: bye", recovery
    assert recovery["dispatcher"] == recovery["unit"] == "reinvite 481", recovery


def test_parties_that_get_no_media_after_a_crash_are_hung_up_not_left_in_silence(
    lab_factory: Callable[..., Lab], phone_factory: Callable[..., BaresipPhone]
) -> None:
    """The next start has RTP ports for one party only (LINKCALL_RTP_PORTS one pair): the two
    without media are sent BYE, and the one re-INVITEd is then alone, so it is hung up too;
    the call ends `interrupted` and nobody is left in a dead call (D14). Before, the first
    failure to open an endpoint aborted the call's recovery with the re-INVITEd party still
    up and nothing left to end it."""
    lab = lab_factory("udp")
    phones = _phones(lab, phone_factory)
    bid = lab.start_bridge()
    lab.wait(bid, _all_connected, 30, "not connected")
    time.sleep(1.5)
    marks = {r: p.event_count() for r, p in phones.items()}
    lab.service.kill()
    lo = int(lab.env["LINKCALL_RTP_PORTS"].split("-")[0])
    even = lo + lo % 2
    lab.env["LINKCALL_RTP_PORTS"] = f"{even}-{even + 1}"  # one RTP/RTCP pair: one party

    lab.service.start()
    for role, phone in phones.items():
        phone.wait_event("CALL_CLOSED", 10.0, marks[role])
    body = lab.wait(bid, lambda b: b["state"] == "ended", 5.0, "not ended")
    assert body["end_reason"] == "interrupted" and body["resumed_at"] is None, body
    recovery = sorted(leg["recovery"] for leg in body["legs"])
    assert recovery == [
        "no media (PortRangeExhausted): bye 200",
        "no media (PortRangeExhausted): bye 200",
        "reinvite 200, then alone: bye",
    ], recovery
