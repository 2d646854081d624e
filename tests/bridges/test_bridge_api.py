"""Issue 5 through the API: real phones (caller 400 Hz, dispatcher 1000 Hz, unit 1800 Hz)."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time
import wave
from pathlib import Path

import pytest

from lab.audio import tone_report
from lab.baresip import BaresipPhone
from tests.bridges.conftest import BUSY_NUMBER, BridgeLab, leg

pytestmark = [pytest.mark.integration, pytest.mark.slow]

TONES = {"caller": 400.0, "dispatcher": 1000.0, "unit": 1800.0}
USERS = {"caller": "2001", "dispatcher": "2002", "unit": "2003"}
HEARD_MIN_DB = -30.0
SILENT_MAX_DB = -50.0


def _phones(lab: BridgeLab) -> dict[str, BaresipPhone]:
    return {r: lab.phone(USERS[r], tone_hz=TONES[r]) for r in TONES}


def _connected(body: dict) -> bool:  # type: ignore[type-arg]
    return body["state"] == "connected" and all(x["state"] == "connected" for x in body["legs"])


def _ended(body: dict) -> bool:  # type: ignore[type-arg]
    return body["state"] in ("ended", "failed") and body["recording_id"] is not None


def _bridge(lab: BridgeLab, unit: dict[str, str], **kw: object) -> dict:  # type: ignore[type-arg]
    resp = lab.post(
        "/api/v1/bridges",
        json={
            "caller": {"number": USERS["caller"]},
            "dispatcher": {"number": USERS["dispatcher"]},
            "unit": unit,
        },
        **kw,
    )
    assert resp.status_code == 202, resp.text
    return resp.json()  # type: ignore[no-any-return]


def _download(lab: BridgeLab, rec_id: str, track: str, dest: Path) -> Path:
    resp = lab.get(f"/api/v1/recordings/{rec_id}/audio", params={"track": track}, role="supervisor")
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"] == "audio/wav"
    path = dest / f"{track}.wav"
    path.write_bytes(resp.content)
    return path


def test_bridge_connects_three_phones_each_hears_the_others_and_the_recording_proves_it(
    bridge_lab: BridgeLab, tmp_path: Path
) -> None:
    phones = _phones(bridge_lab)
    created = _bridge(bridge_lab, {"number": USERS["unit"]})
    assert created["state"] == "dialing"
    bridge_lab.wait_bridge(created["id"], _connected)
    time.sleep(4.0)
    assert bridge_lab.post(f"/api/v1/bridges/{created['id']}/end").status_code == 200
    body = bridge_lab.wait_bridge(created["id"], _ended)
    assert body["state"] == "ended"

    for role, phone in phones.items():
        phone.wait_closed(10)  # baresip completes the WAV when the call closes
        levels = tone_report(phone.received_recordings()[-1], TONES.values(), start=1.0)
        for other, hz in TONES.items():
            if other == role:
                assert levels[hz] < SILENT_MAX_DB, f"{role} hears itself: {levels}"
            else:
                assert levels[hz] > HEARD_MIN_DB, f"{role} misses {other}: {levels}"

    deadline = time.monotonic() + 10
    while True:
        meta = bridge_lab.get(f"/api/v1/recordings/{body['recording_id']}").json()
        if meta["state"] == "finalised" or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert meta["state"] == "finalised", meta
    assert meta["health"]["ok"], meta["health"]
    assert set(meta["tracks"]) == {"mixed", "caller", "dispatcher", "unit"}
    mixed = _download(bridge_lab, meta["id"], "mixed", tmp_path)
    assert all(v > HEARD_MIN_DB for v in tone_report(mixed, TONES.values(), start=1.0).values())
    for role, hz in TONES.items():
        track = _download(bridge_lab, meta["id"], role, tmp_path)
        assert hashlib.sha256(track.read_bytes()).hexdigest() == meta["tracks"][role]["sha256"]
        assert tone_report(track, [hz], start=1.0)[hz] > HEARD_MIN_DB
    audit = bridge_lab.get(
        "/api/v1/audit", role="supervisor", params={"resource_type": "recording"}
    ).json()
    assert sum(1 for a in audit if a["action"] == "recording.audio") == 4

    # the evidence check: intact now; an altered track is flagged and the command fails
    env = {**os.environ, "LINKCALL_DATA_DIR": str(tmp_path / "data")}
    env.pop("LINKCALL_DATABASE_URL", None)
    check = [sys.executable, "-m", "api", "recordings", "check"]
    ok = subprocess.run(check, env=env, capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0 and "0 recording(s) with problems" in ok.stdout, ok.stdout
    unit_wav = tmp_path / "data" / "recordings" / meta["tracks"]["unit"]["file"]
    unit_wav.chmod(0o644)
    with open(unit_wav, "r+b") as f:
        f.seek(2000)
        f.write(b"\x00" * 64)
    bad = subprocess.run(check, env=env, capture_output=True, text=True, timeout=60)
    assert bad.returncode == 1 and "hash_mismatch" in bad.stdout, bad.stdout
    assert bridge_lab.get(f"/api/v1/recordings/{meta['id']}").json()["health"]["ok"] is False


def test_unit_busy_then_no_answer_then_the_leader_answers(
    bridge_lab: BridgeLab,
) -> None:
    _phones(bridge_lab)
    silent = bridge_lab.phone("2005", tone_hz=600.0, auto_answer=False)
    assert (
        bridge_lab.post(
            "/api/v1/units",
            role="admin",
            json={"code": "L07", "name": "县供电公司", "kind": "linkage"},
        ).status_code
        == 201
    )
    from datetime import datetime
    from zoneinfo import ZoneInfo

    iso = datetime.now(ZoneInfo("Asia/Shanghai")).isocalendar()
    roster = {
        "leader": {"name": "王队长", "phone": USERS["unit"]},
        "staff": [
            {"name": "张三", "phone": BUSY_NUMBER, "order": 1},
            {"name": "李四", "phone": "2005", "order": 2},
        ],
    }
    resp = bridge_lab.http.put(
        f"/api/v1/units/L07/rosters/{iso.year}-W{iso.week:02d}",
        json=roster,
        headers=bridge_lab.live.auth("admin"),
    )
    assert resp.status_code in (200, 201), resp.text

    created = _bridge(bridge_lab, {"unit_code": "L07"})
    body = bridge_lab.wait_bridge(created["id"], _connected, timeout=40)
    attempts = leg(body, "unit")["attempts"]
    assert [a["number"] for a in attempts] == [BUSY_NUMBER, "2005", USERS["unit"]]
    assert attempts[0]["result"] == "busy" and attempts[0]["sip_status"] == 486
    assert attempts[1]["result"] in ("timeout", "no_answer", "cancelled"), attempts[1]
    assert attempts[2]["result"] == "answered", attempts[2]
    assert attempts[0]["label"] and "张三" in attempts[0]["label"]
    assert silent.call_count() == 0  # the unanswered phone stopped ringing
    bridge_lab.post(f"/api/v1/bridges/{created['id']}/end")
    bridge_lab.wait_bridge(created["id"], _ended)


def test_dispatcher_leaves_hold_and_mute_do_what_they_say(
    bridge_lab: BridgeLab,
) -> None:
    phones = _phones(bridge_lab)
    bid = _bridge(bridge_lab, {"number": USERS["unit"]})["id"]
    bridge_lab.wait_bridge(bid, _connected)
    marks: dict[str, float] = {"start": time.monotonic()}
    time.sleep(2.0)
    resp = bridge_lab.post(f"/api/v1/bridges/{bid}/legs/caller/hold")
    assert resp.status_code == 200 and leg(resp.json(), "caller")["held"] is True
    marks["hold"] = time.monotonic()
    time.sleep(2.5)
    bridge_lab.post(f"/api/v1/bridges/{bid}/legs/caller/unhold")
    resp = bridge_lab.post(f"/api/v1/bridges/{bid}/legs/unit/mute")
    assert leg(resp.json(), "unit")["muted"] is True
    marks["mute"] = time.monotonic()
    time.sleep(2.5)
    bridge_lab.post(f"/api/v1/bridges/{bid}/legs/unit/unmute")
    resp = bridge_lab.post(f"/api/v1/bridges/{bid}/legs/dispatcher/hangup")
    assert resp.status_code == 200
    marks["left"] = time.monotonic()
    time.sleep(2.5)
    body = bridge_lab.get(f"/api/v1/bridges/{bid}").json()
    assert body["state"] == "connected" and leg(body, "dispatcher")["state"] == "left"
    # the dispatcher is dialled again and rejoins the same call
    assert bridge_lab.post(f"/api/v1/bridges/{bid}/legs/dispatcher/redial").status_code == 200
    body = bridge_lab.wait_bridge(bid, lambda b: leg(b, "dispatcher")["state"] == "connected")
    assert [a["result"] for a in leg(body, "dispatcher")["attempts"]] == ["answered", "answered"]
    # an action that does not fit the party's state is a 409 problem, nothing changes
    again = bridge_lab.post(f"/api/v1/bridges/{bid}/legs/dispatcher/redial")
    assert again.status_code == 409, again.text
    assert again.headers["content-type"].startswith("application/problem+json")
    bridge_lab.post(f"/api/v1/bridges/{bid}/end")
    bridge_lab.wait_bridge(bid, _ended)

    def window(phone: str, a: str, seconds: float = 2.0) -> dict[float, float]:
        phones[phone].wait_closed(10)  # baresip completes the WAV when the call closes
        rec = phones[phone].received_recordings()[0]  # the first call (the dispatcher redials)
        with wave.open(str(rec)) as w:
            total = w.getnframes() / w.getframerate()
        # phones' recordings end when their call ends; align on the end of the caller's call
        offset = marks[a] - marks["start"]
        del total
        return tone_report(rec, TONES.values(), start=offset + 0.5, end=offset + 0.5 + seconds)

    held = window("dispatcher", "hold")  # while the caller is held
    assert held[TONES["caller"]] < SILENT_MAX_DB, held
    assert held[TONES["unit"]] > HEARD_MIN_DB, held
    muted = window("caller", "mute")  # while the unit is muted
    assert muted[TONES["unit"]] < SILENT_MAX_DB, muted
    assert muted[TONES["dispatcher"]] > HEARD_MIN_DB, muted
    after = window("caller", "left")
    assert after[TONES["unit"]] > HEARD_MIN_DB, after
    assert after[TONES["dispatcher"]] < SILENT_MAX_DB, after


def test_idempotency_key_dials_nothing_new_and_bad_numbers_are_refused(
    bridge_lab: BridgeLab,
) -> None:
    phones = _phones(bridge_lab)
    headers = {"Idempotency-Key": "incident-42-unit"}
    first = _bridge(bridge_lab, {"number": USERS["unit"]}, headers=headers)
    bridge_lab.wait_bridge(first["id"], _connected)
    again = bridge_lab.post(
        "/api/v1/bridges",
        headers=headers,
        json={
            "caller": {"number": USERS["caller"]},
            "dispatcher": {"number": USERS["dispatcher"]},
            "unit": {"number": USERS["unit"]},
        },
    )
    assert again.status_code == 200 and again.json()["id"] == first["id"]
    time.sleep(1.0)
    assert phones["unit"].call_count() == 1
    calls = bridge_lab.get("/api/v1/calls").json()
    assert len(calls) == 1
    bridge_lab.post(f"/api/v1/bridges/{first['id']}/end")
    bridge_lab.wait_bridge(first["id"], _ended)

    for field, number in (
        ("unit", "+44 20 7946 0958"),
        ("caller", "16800123456"),
        ("dispatcher", "2002\r\nVia: x"),
        ("unit", "110"),
    ):
        body = {
            "caller": {"number": "2001"},
            "dispatcher": {"number": "2002"},
            "unit": {"number": "2003"},
        }
        body[field] = {"number": number}
        resp = bridge_lab.post("/api/v1/bridges", json=body)
        assert resp.status_code == 422, (number, resp.text)
        assert resp.headers["content-type"].startswith("application/problem+json")
        assert resp.json()["errors"][0]["field"].startswith(field)
    assert len(bridge_lab.get("/api/v1/calls").json()) == 1  # nothing dialled


def test_ending_a_bridge_that_is_still_ringing_ends_it_at_once(bridge_lab: BridgeLab) -> None:
    desk = bridge_lab.phone("2005", tone_hz=600.0, auto_answer=False)
    since = desk.event_count()
    resp = bridge_lab.post(
        "/api/v1/bridges",
        json={
            "caller": {"number": "2001"},
            "dispatcher": {"number": "2005"},
            "unit": {"number": "2003"},
        },
    )
    bid = resp.json()["id"]
    desk.wait_incoming(10, since)
    started = time.monotonic()
    ended = bridge_lab.post(f"/api/v1/bridges/{bid}/end")
    assert ended.status_code == 200
    assert ended.json()["state"] == "ended", ended.json()
    assert time.monotonic() - started < 3.0
    desk.wait_closed(10, since)  # the seat stops ringing
    body = bridge_lab.wait_bridge(
        bid, lambda b: leg(b, "dispatcher")["attempts"][0]["result"] is not None
    )
    assert body["end_reason"] == "ended_by_request"


def test_concurrent_requests_never_stall_the_service(bridge_lab: BridgeLab) -> None:
    """Twenty dispatchers at once: every request answers promptly and every call is stored."""
    from concurrent.futures import ThreadPoolExecutor

    body = {
        "caller": {"number": "2001"},
        "dispatcher": {"number": BUSY_NUMBER},
        "unit": {"number": "2003"},
    }
    started = time.monotonic()
    with ThreadPoolExecutor(20) as pool:
        codes = list(
            pool.map(lambda _: bridge_lab.post("/api/v1/bridges", json=body).status_code, range(20))
        )
    assert codes == [202] * 20
    assert time.monotonic() - started < 15.0
    deadline = time.monotonic() + 20
    while True:
        calls = bridge_lab.get("/api/v1/calls", params={"limit": 100}).json()
        if len(calls) == 20 and all(c["state"] == "failed" for c in calls):
            break
        assert time.monotonic() < deadline, [c["state"] for c in calls]
        time.sleep(0.3)
    assert {c["end_reason"] for c in calls} == {"unreachable:dispatcher"}
    with ThreadPoolExecutor(20) as pool:  # ending what is over: a prompt 409 each
        ends = list(pool.map(lambda c: bridge_lab.post(f"/api/v1/bridges/{c['id']}/end"), calls))
    assert [r.status_code for r in ends] == [409] * 20


def test_concurrent_requests_with_one_idempotency_key_make_one_bridge(
    bridge_lab: BridgeLab,
) -> None:
    """A dispatcher's client retrying in a hurry: ten requests with the same key at once give
    one bridge (one 202, the rest 200 with its id) and dial it once."""
    from concurrent.futures import ThreadPoolExecutor

    body = {
        "caller": {"number": "2001"},
        "dispatcher": {"number": BUSY_NUMBER},
        "unit": {"number": "2003"},
    }
    headers = {"Idempotency-Key": "incident-77-retry"}
    with ThreadPoolExecutor(10) as pool:
        answers = list(
            pool.map(
                lambda _: bridge_lab.post("/api/v1/bridges", json=body, headers=headers),
                range(10),
            )
        )
    codes = sorted(r.status_code for r in answers)
    assert codes == [200] * 9 + [202], [r.text for r in answers if r.status_code >= 300]
    assert len({r.json()["id"] for r in answers}) == 1
    calls = bridge_lab.get("/api/v1/calls", params={"limit": 100}).json()
    assert [c["id"] for c in calls] == [answers[0].json()["id"]]


def test_concurrent_controls_of_a_live_bridge_all_answer_promptly(bridge_lab: BridgeLab) -> None:
    from concurrent.futures import ThreadPoolExecutor

    _phones(bridge_lab)
    bid = _bridge(bridge_lab, {"number": USERS["unit"]})["id"]
    bridge_lab.wait_bridge(bid, _connected)
    actions = ["mute", "unmute"] * 10
    started = time.monotonic()
    with ThreadPoolExecutor(20) as pool:
        codes = list(
            pool.map(
                lambda a: bridge_lab.post(f"/api/v1/bridges/{bid}/legs/unit/{a}").status_code,
                actions,
            )
        )
    elapsed = time.monotonic() - started
    assert set(codes) <= {200, 409} and codes.count(200) >= 10, codes
    assert elapsed < 10.0, f"20 controls took {elapsed:.1f} s"
    audit = bridge_lab.get(
        "/api/v1/audit", role="supervisor", params={"resource_id": bid, "limit": 100}
    ).json()
    assert sum(1 for a in audit if a["action"].startswith("bridge.leg.")) == codes.count(200)
    assert bridge_lab.post(f"/api/v1/bridges/{bid}/end").status_code == 200


def test_a_phone_that_vanishes_without_bye_is_dropped_and_the_others_stay(
    bridge_lab: BridgeLab,
) -> None:
    """A dropped leg: the unit's phone dies (no BYE, no RTP). After the media timeout (4 s in
    this lab) its leg ends 'media_timeout'; caller and dispatcher stay connected."""
    import signal

    phones = _phones(bridge_lab)
    bid = _bridge(bridge_lab, {"number": USERS["unit"]})["id"]
    bridge_lab.wait_bridge(bid, _connected)
    time.sleep(1.0)
    pid = phones["unit"].pid
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    killed = time.monotonic()
    body = bridge_lab.wait_bridge(bid, lambda b: leg(b, "unit")["state"] == "left", timeout=20)
    assert 3.0 <= time.monotonic() - killed <= 12.0
    assert leg(body, "unit")["end_reason"] == "media_timeout", leg(body, "unit")
    assert body["state"] == "connected"
    assert {leg(body, r)["state"] for r in ("caller", "dispatcher")} == {"connected"}
    bridge_lab.post(f"/api/v1/bridges/{bid}/end")
    bridge_lab.wait_bridge(bid, _ended)
