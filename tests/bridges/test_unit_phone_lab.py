"""Issue 12 with real phones: extensions, answer confirmation (按1接入), caller id, more units.

The service runs with LINKCALL_UNIT_CONFIRM on (the default) and short lab timeouts. Phones:
caller 2001 (400 Hz), dispatcher 2002 (1000 Hz), unit 2003 (1800 Hz), second unit 2005
(2600 Hz), and a landline behind a switchboard: an unregistered phone +868334201234 that
Kamailio's trunk route reaches, dialled for `0833-4201234转8001`. A duty officer's phone
presses 1 a second after it answered (`press_on_answer`); a voicemail presses nothing.
Audio is judged in the last seconds of each phone's own recording (all calls end together when
the bridge ends), after every prompt has finished.
"""

from __future__ import annotations

import time
import wave
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from lab.audio import tone_report
from lab.baresip import BaresipPhone
from lab.kamailio import Kamailio
from lab.sipp import Sipp
from tests.bridges.conftest import BridgeLab, leg, live_lab

pytestmark = [pytest.mark.integration, pytest.mark.slow]

TONES = {"caller": 400.0, "dispatcher": 1000.0, "unit": 1800.0, "unit2": 2600.0}
USERS = {"caller": "2001", "dispatcher": "2002", "unit": "2003", "unit2": "2005"}
SWITCHBOARD = "+868334201234"
HEARD_MIN_DB = -30.0
SILENT_MAX_DB = -50.0
CONFIRM_TIMEOUT_S = 2.0


@pytest.fixture
def unit_lab(
    tmp_path: Path,
    kamailio_factory: Callable[..., Kamailio],
    lab_users: dict[str, str],
    phone_factory: Callable[..., BaresipPhone],
) -> Iterator[tuple[BridgeLab, BaresipPhone]]:
    switchboard = phone_factory(SWITCHBOARD, tone_hz=1800.0, kamailio=False)
    kam = kamailio_factory(
        trunk_regex="^[+]86[0-9]+$", trunk_target=("127.0.0.1", switchboard.sip_port)
    )
    with live_lab(
        tmp_path,
        kam,
        lab_users,
        phone_factory,
        unit_confirm=True,
        unit_confirm_timeout_s=CONFIRM_TIMEOUT_S,
        unit_confirm_extension_timeout_s=30.0,
        extension_delay_ms=1000,
        ring_timeout_unit_s=10.0,
    ) as lab:
        yield lab, switchboard


def _bridge(lab: BridgeLab, unit: dict[str, str]) -> str:
    resp = lab.post(
        "/api/v1/bridges",
        json={
            "caller": {"number": USERS["caller"]},
            "dispatcher": {"number": USERS["dispatcher"]},
            "unit": unit,
        },
    )
    assert resp.status_code == 202, resp.text
    return str(resp.json()["id"])


def _all_connected(roles: tuple[str, ...]) -> Callable[[dict[str, Any]], bool]:
    def check(body: dict[str, Any]) -> bool:
        states = {x["role"]: x["state"] for x in body["legs"]}
        return body["state"] == "connected" and all(states.get(r) == "connected" for r in roles)

    return check


def _end(lab: BridgeLab, bid: str) -> dict[str, Any]:
    assert lab.post(f"/api/v1/bridges/{bid}/end").status_code == 200
    return lab.wait_bridge(bid, lambda b: b["state"] == "ended" and b["recording_id"] is not None)


def _tail_levels(phone: BaresipPhone, seconds: float = 4.0) -> dict[float, float]:
    """What the phone heard in the last `seconds` of its last call (the final 0.5 s left out)."""
    phone.wait_closed(10)
    rec = phone.received_recordings()[-1]
    with wave.open(str(rec)) as w:
        total = w.getnframes() / w.getframerate()
    return tone_report(rec, TONES.values(), start=total - 0.5 - seconds, end=total - 0.5)


def _assert_each_hears_the_others(phones: dict[str, BaresipPhone]) -> None:
    for role, phone in phones.items():
        levels = _tail_levels(phone)
        for other in phones:
            hz = TONES[other]
            if other == role:
                assert levels[hz] < SILENT_MAX_DB, f"{role} hears itself: {levels}"
            else:
                assert levels[hz] > HEARD_MIN_DB, f"{role} misses {other}: {levels}"


def _roster(lab: BridgeLab, code: str, staff: list[str], leader: str) -> None:
    resp = lab.post(
        "/api/v1/units", role="admin", json={"code": code, "name": "县供电公司", "kind": "linkage"}
    )
    assert resp.status_code == 201, resp.text
    iso = datetime.now(ZoneInfo("Asia/Shanghai")).isocalendar()
    roster = {
        "leader": {"name": "王队长", "phone": leader},
        "staff": [{"name": f"值班{i}", "phone": p, "order": i} for i, p in enumerate(staff, 1)],
    }
    resp = lab.http.put(
        f"/api/v1/units/{code}/rosters/{iso.year}-W{iso.week:02d}",
        json=roster,
        headers=lab.live.auth("admin"),
    )
    assert resp.status_code in (200, 201), resp.text


def test_a_unit_that_presses_1_joins_is_heard_by_both_and_sees_the_110_caller_id(
    unit_lab: tuple[BridgeLab, BaresipPhone],
) -> None:
    lab, _ = unit_lab
    phones = {r: lab.phone(USERS[r], tone_hz=TONES[r]) for r in ("caller", "dispatcher", "unit")}
    phones["unit"].press_on_answer("1", delay_s=1.0)
    since = phones["unit"].event_count()
    bid = _bridge(lab, {"number": USERS["unit"]})
    body = lab.wait_bridge(bid, _all_connected(("caller", "dispatcher", "unit")), timeout=40)
    attempt = leg(body, "unit")["attempts"][0]
    assert attempt["result"] == "answered" and attempt["confirmed_at"] is not None
    assert phones["unit"].caller_names(since) == ["110指挥中心"]  # the From display name
    time.sleep(7.0)  # the others' "正在接通" notice is over; they talk
    _end(lab, bid)
    _assert_each_hears_the_others(phones)


def test_a_phone_that_answers_and_presses_nothing_is_not_confirmed_and_the_next_joins(
    unit_lab: tuple[BridgeLab, BaresipPhone],
) -> None:
    lab, _ = unit_lab
    phones = {r: lab.phone(USERS[r], tone_hz=TONES[r]) for r in ("caller", "dispatcher", "unit")}
    voicemail = lab.phone("2006", tone_hz=600.0)  # answers, never presses a key
    phones["unit"].press_on_answer("1", delay_s=1.0)
    _roster(lab, "L07", staff=["2006"], leader=USERS["unit"])
    since = voicemail.event_count()
    bid = _bridge(lab, {"unit_code": "L07"})
    body = lab.wait_bridge(bid, _all_connected(("caller", "dispatcher", "unit")), timeout=60)
    attempts = leg(body, "unit")["attempts"]
    assert [(a["number"], a["result"]) for a in attempts] == [
        ("2006", "not_confirmed"),
        (USERS["unit"], "answered"),
    ]
    assert "值班1" in attempts[0]["label"] and attempts[0]["confirmed_at"] is None
    voicemail.wait_closed(5, since)  # hung up, not left in the call
    # the voicemail heard the prompt (speech), twice: it stayed on for two prompts and waits
    prompt = voicemail.received_recordings()[-1]
    with wave.open(str(prompt)) as w:
        listened = w.getnframes() / w.getframerate()
    assert listened > 2 * (12.0 + CONFIRM_TIMEOUT_S) - 3.0, listened
    assert max(tone_report(prompt, TONES.values(), end=10.0).values()) > -45.0
    time.sleep(7.0)
    _end(lab, bid)
    _assert_each_hears_the_others(phones)
    # while the voicemail was asked (after the others' short notice), nobody heard it (600 Hz)
    asked = tone_report(phones["caller"].received_recordings()[-1], [600.0], start=7.0, end=20.0)
    assert asked[600.0] < SILENT_MAX_DB, asked


def test_an_extension_is_keyed_in_after_the_answer_in_order_then_confirmed(
    unit_lab: tuple[BridgeLab, BaresipPhone],
) -> None:
    lab, switchboard = unit_lab
    phones = {r: lab.phone(USERS[r], tone_hz=TONES[r]) for r in ("caller", "dispatcher")}
    switchboard.press_on_answer("1", delay_s=4.0)  # the extension's person, once put through
    since = switchboard.event_count()
    bid = _bridge(lab, {"number": "0833-4201234转8001"})
    body = lab.wait_bridge(bid, _all_connected(("caller", "dispatcher", "unit")), timeout=40)
    assert switchboard.received_dtmf(since) == "8001"
    attempt = leg(body, "unit")["attempts"][0]
    assert attempt["number"] == SWITCHBOARD and attempt["extension"] == "8001"
    assert attempt["extension_sent_at"] is not None and attempt["confirmed_at"] is not None
    sent = datetime.fromisoformat(attempt["extension_sent_at"])
    assert datetime.fromisoformat(attempt["confirmed_at"]) > sent
    assert (sent - datetime.fromisoformat(attempt["started_at"])).total_seconds() >= 1.0
    time.sleep(7.0)
    _end(lab, bid)
    _assert_each_hears_the_others({**phones, "unit": switchboard})


def test_four_parties_each_hear_the_three_others_and_unit2_has_its_track(
    unit_lab: tuple[BridgeLab, BaresipPhone], tmp_path: Path
) -> None:
    lab, _ = unit_lab
    phones = {r: lab.phone(USERS[r], tone_hz=TONES[r]) for r in TONES}
    phones["unit"].press_on_answer("1", delay_s=1.0)
    phones["unit2"].press_on_answer("1", delay_s=1.0)
    bid = _bridge(lab, {"number": USERS["unit"]})
    lab.wait_bridge(bid, _all_connected(("caller", "dispatcher", "unit")), timeout=40)
    resp = lab.post(f"/api/v1/bridges/{bid}/units", json={"number": USERS["unit2"]})
    assert resp.status_code == 202, resp.text
    assert leg(resp.json(), "unit2")["state"] in ("dialing", "confirming", "connected")
    body = lab.wait_bridge(bid, _all_connected(tuple(TONES)), timeout=40)
    assert leg(body, "unit2")["attempts"][0]["confirmed_at"] is not None
    time.sleep(7.0)
    body = _end(lab, bid)
    _assert_each_hears_the_others(phones)
    meta = lab.get(f"/api/v1/recordings/{body['recording_id']}").json()
    deadline = time.monotonic() + 10
    while meta["state"] != "finalised" and time.monotonic() < deadline:
        time.sleep(0.2)
        meta = lab.get(f"/api/v1/recordings/{body['recording_id']}").json()
    assert set(meta["tracks"]) == {"mixed", "caller", "dispatcher", "unit", "unit2"}, meta
    # the added unit's own track downloads like the others (it was refused 422 before)
    audio = lab.get(
        f"/api/v1/recordings/{meta['id']}/audio", params={"track": "unit2"}, role="supervisor"
    )
    assert audio.status_code == 200, audio.text
    assert audio.headers["content-type"] == "audio/wav"
    wav = tmp_path / "unit2.wav"
    wav.write_bytes(audio.content)
    with wave.open(str(wav)) as w:
        seconds = w.getnframes() / w.getframerate()
    levels = tone_report(wav, TONES.values(), start=1.0, end=seconds - 0.5)
    assert levels[TONES["unit2"]] > HEARD_MIN_DB, levels  # unit2's own voice ...
    assert levels[TONES["unit"]] < SILENT_MAX_DB, levels  # ... and not the others'


def test_replace_ends_the_first_unit_and_connects_the_second(
    unit_lab: tuple[BridgeLab, BaresipPhone], tmp_path: Path
) -> None:
    lab, _ = unit_lab
    phones = {r: lab.phone(USERS[r], tone_hz=TONES[r]) for r in TONES}
    phones["unit"].press_on_answer("1", delay_s=1.0)
    phones["unit2"].press_on_answer("1", delay_s=1.0)
    first = phones["unit"].event_count()
    bid = _bridge(lab, {"number": USERS["unit"]})
    lab.wait_bridge(bid, _all_connected(("caller", "dispatcher", "unit")), timeout=40)
    resp = lab.post(f"/api/v1/bridges/{bid}/legs/unit/replace", json={"number": USERS["unit2"]})
    assert resp.status_code == 202, resp.text
    phones["unit"].wait_closed(10, first)  # the first unit is hung up at once
    body = lab.wait_bridge(
        bid, lambda b: _all_connected(("caller", "dispatcher", "unit"))(b)
        and leg(b, "unit")["number"] == USERS["unit2"], timeout=40,
    )  # fmt: skip
    attempts = leg(body, "unit")["attempts"]
    assert [(a["number"], a["result"]) for a in attempts] == [
        (USERS["unit"], "answered"),
        (USERS["unit2"], "answered"),
    ]
    time.sleep(7.0)
    body = _end(lab, bid)
    for role in ("caller", "dispatcher"):
        levels = _tail_levels(phones[role])
        assert levels[TONES["unit2"]] > HEARD_MIN_DB, (role, levels)
        assert levels[TONES["unit"]] < SILENT_MAX_DB, (role, levels)
    deadline = time.monotonic() + 10
    meta = lab.get(f"/api/v1/recordings/{body['recording_id']}").json()
    while meta["state"] != "finalised" and time.monotonic() < deadline:
        time.sleep(0.2)
        meta = lab.get(f"/api/v1/recordings/{body['recording_id']}").json()
    # both units are in the unit track: the first, then the second
    resp = lab.get(f"/api/v1/recordings/{meta['id']}/audio", params={"track": "unit"},
                   role="supervisor")  # fmt: skip
    assert resp.status_code == 200, resp.text
    track = tmp_path / "unit.wav"
    track.write_bytes(resp.content)
    total = meta["tracks"]["unit"]["duration_s"]
    # the first unit, before the replace: heard in some half second of the track (its share of
    # the whole track depends on how long it was in the call, so the whole-track level does not
    # say whether it was recorded)
    windows = [
        tone_report(track, [TONES["unit"]], start=t / 2, end=t / 2 + 0.5)[TONES["unit"]]
        for t in range(int(total * 2) - 1)
    ]
    assert max(windows) > HEARD_MIN_DB, windows
    last = tone_report(track, [TONES["unit"], TONES["unit2"]], start=total - 3.5, end=total - 0.5)
    assert last[TONES["unit2"]] > HEARD_MIN_DB and last[TONES["unit"]] < SILENT_MAX_DB, last


def test_without_telephone_event_the_extension_goes_by_sip_info_in_order(
    tmp_path: Path,
    kamailio_factory: Callable[..., Kamailio],
    lab_users: dict[str, str],
    phone_factory: Callable[..., BaresipPhone],
) -> None:
    """A SIPp switchboard offering no telephone-event: the digits 8001 must come as four SIP
    INFOs in that order (SIPp fails the call otherwise); then it presses 1 by INFO and joins."""
    switchboard = Sipp.info_switchboard(tmp_path / "sipp", "8001", confirm_delay_ms=1500)
    switchboard.start()
    try:
        kam = kamailio_factory(
            trunk_regex="^[+]86[0-9]+$", trunk_target=("127.0.0.1", switchboard.port)
        )
        with live_lab(
            tmp_path, kam, lab_users, phone_factory, extension_delay_ms=500,
            unit_confirm_timeout_s=CONFIRM_TIMEOUT_S, ring_timeout_unit_s=10.0,
        ) as lab:  # fmt: skip
            for role in ("caller", "dispatcher"):
                lab.phone(USERS[role], tone_hz=TONES[role])
            bid = _bridge(lab, {"number": "0833-4201234转8001"})
            body = lab.wait_bridge(bid, _all_connected(("caller", "dispatcher", "unit")), 40)
            attempt = leg(body, "unit")["attempts"][0]
            assert attempt["number"] == SWITCHBOARD and attempt["extension"] == "8001"
            assert attempt["extension_sent_at"] is not None
            assert attempt["confirmed_at"] is not None
            _end(lab, bid)
        # exit status 0: its one call passed every check (four INFOs 8, 0, 0, 1 in order)
        assert switchboard.wait(20) == 0, switchboard.errors_text()
    finally:
        switchboard.stop()


def test_an_inbound_call_adding_a_unit_asks_it_to_press_1_too(
    unit_lab: tuple[BridgeLab, BaresipPhone],
) -> None:
    """The caller rings the seats, seat 2002 answers, the dispatcher adds unit L08: its first
    number (a voicemail) is not_confirmed, the second presses 1 and joins caller and seat."""
    lab, _ = unit_lab
    caller = lab.phone(USERS["caller"], tone_hz=TONES["caller"])
    seat = lab.phone(USERS["dispatcher"], tone_hz=TONES["dispatcher"])
    unit = lab.phone(USERS["unit"], tone_hz=TONES["unit"])
    unit.press_on_answer("1", delay_s=1.0)
    lab.phone("2006", tone_hz=600.0)  # answers, never presses a key
    _roster(lab, "L08", staff=["2006"], leader=USERS["unit"])
    caller.dial("1000")  # the service's number
    deadline = time.monotonic() + 20
    while True:
        calls = lab.get("/api/v1/calls", params={"kind": "inbound"}).json()
        if calls and calls[0]["state"] == "connected":
            break
        assert time.monotonic() < deadline, calls
        time.sleep(0.2)
    call_id = calls[0]["id"]
    resp = lab.post(
        "/api/v1/bridges",
        json={"caller": {"call_id": call_id}, "dispatcher": {"number": USERS["dispatcher"]},
              "unit": {"unit_code": "L08"}},
    )  # fmt: skip
    assert resp.status_code == 202, resp.text
    body = lab.wait_bridge(call_id, _all_connected(("caller", "dispatcher", "unit")), timeout=60)
    attempts = leg(body, "unit")["attempts"]
    assert [(a["number"], a["result"]) for a in attempts] == [
        ("2006", "not_confirmed"),
        (USERS["unit"], "answered"),
    ]
    assert attempts[1]["confirmed_at"] is not None
    time.sleep(7.0)
    _end(lab, call_id)
    _assert_each_hears_the_others({"caller": caller, "dispatcher": seat, "unit": unit})
