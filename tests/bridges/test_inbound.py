"""An inbound call (issue 5): it rings two dispatcher seats, the first to answer gets it, the
other stops ringing; a unit is then added and all three hear each other."""

from __future__ import annotations

import time

import pytest

from lab.audio import tone_report
from tests.bridges.conftest import SEATS, BridgeLab, leg

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_inbound_call_rings_both_seats_first_answer_wins_then_a_unit_joins(
    bridge_lab: BridgeLab,
) -> None:
    caller = bridge_lab.phone("2001", tone_hz=400.0)
    desk_a = bridge_lab.phone(SEATS[0], tone_hz=1000.0, auto_answer=False)
    desk_b = bridge_lab.phone(SEATS[1], tone_hz=700.0, auto_answer=False)
    unit = bridge_lab.phone("2003", tone_hz=1800.0)

    since_a, since_b = desk_a.event_count(), desk_b.event_count()
    caller.dial("1000")  # the service's number
    desk_a.wait_incoming(10, since_a)
    desk_b.wait_incoming(10, since_b)  # both seats ring at once
    desk_a.accept()
    desk_b.wait_closed(10, since_b)  # the other seat stops ringing

    deadline = time.monotonic() + 15
    while True:
        calls = bridge_lab.get("/api/v1/calls", params={"kind": "inbound"}).json()
        if calls and calls[0]["state"] == "connected":
            break
        assert time.monotonic() < deadline, calls
        time.sleep(0.2)
    call_id = calls[0]["id"]
    assert calls[0]["parties"] == {"caller": "2001", "dispatcher": SEATS[0]}
    assert desk_b.call_count() == 0

    resp = bridge_lab.post(
        "/api/v1/bridges",
        json={
            "caller": {"call_id": call_id},
            "dispatcher": {"number": SEATS[0]},
            "unit": {"number": "2003"},
        },
    )
    assert resp.status_code == 202, resp.text
    body = bridge_lab.wait_bridge(
        call_id, lambda b: all(x["state"] == "connected" for x in b["legs"]) and len(b["legs"]) == 3
    )
    assert leg(body, "unit")["attempts"][0]["result"] == "answered"
    time.sleep(3.0)
    bridge_lab.post(f"/api/v1/bridges/{call_id}/end")
    body = bridge_lab.wait_bridge(call_id, lambda b: b["state"] == "ended")

    unit.wait_closed(10)  # baresip completes the WAV when the call closes
    heard = tone_report(unit.received_recordings()[-1], [400.0, 1000.0, 1800.0], start=1.0)
    assert heard[400.0] > -30 and heard[1000.0] > -30 and heard[1800.0] < -50, heard
    meta = bridge_lab.get(f"/api/v1/recordings/{body['recording_id']}").json()
    assert {"mixed", "caller", "dispatcher", "unit"} <= set(meta["tracks"]), meta

    # adding a unit to a call that is not a connected inbound call is refused
    again = bridge_lab.post(
        "/api/v1/bridges",
        json={
            "caller": {"call_id": call_id},
            "dispatcher": {"number": SEATS[0]},
            "unit": {"number": "2003"},
        },
    )
    assert again.status_code == 422
