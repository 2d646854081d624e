"""A planned stop (SIGTERM: an upgrade, `systemctl restart`) of a node with calls up (D18).

With LINKCALL_RECOVER_CALLS on (the default) the connected three-way call is handed to the next
start: no phone is hung up, the first recording segment is sealed at the stop, and the next
process re-INVITEs the parties as after a crash. With it off, every party gets BYE and the call
is stored as ended `shutdown` at the stop itself, not left open for the next start to find."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import httpx
import pytest

from lab.audio import tone_report
from lab.baresip import BaresipPhone
from tests.bridges.test_call_recovery import (  # noqa: F401  (lab_factory: fixture)
    HEARD_MIN_DB,
    TONES,
    Lab,
    _all_connected,
    _phones,
    _wav_seconds,
    lab_factory,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _stop(lab: Lab) -> float:
    """SIGTERM the service and wait for it to exit (uvicorn exits by the same signal once it
    has shut down); seconds it took."""
    assert lab.service.proc is not None
    started = time.monotonic()
    lab.service.proc.terminate()
    lab.service.proc.wait(30)
    return time.monotonic() - started


def test_a_planned_restart_carries_the_call_on_and_hangs_up_nobody(
    lab_factory: Callable[..., Lab],  # noqa: F811
    phone_factory: Callable[..., BaresipPhone],
) -> None:
    lab = lab_factory("udp")
    phones = _phones(lab, phone_factory)
    bid = lab.start_bridge()
    lab.wait(bid, _all_connected, 30, "not connected")
    time.sleep(2.0)
    marks = {r: p.event_count() for r, p in phones.items()}
    took = _stop(lab)
    assert "left to the next start" in lab.service.log.read_text()  # a graceful stop
    time.sleep(0.5)
    for role, phone in phones.items():  # still in the call: nobody got a BYE
        assert phone.call_count() == 1, (role, phone.list_calls())
        assert "CALL_CLOSED" not in [e.get("type") for e in phone.events[marks[role] :]], role

    lab.service.start()
    body = lab.wait(bid, lambda b: b["resumed_at"] is not None, 5.0, "not carried on in 5 s")
    gap = datetime.fromisoformat(body["resumed_at"]) - datetime.fromisoformat(
        body["gap_started_at"]
    )
    print(f"stop took {took:.1f} s; silence on the call's clock {gap.total_seconds():.1f} s")
    assert body["state"] == "connected", body
    assert {leg["role"]: leg["recovery"] for leg in body["legs"]} == {
        r: "reinvite 200" for r in TONES
    }
    assert gap.total_seconds() >= took, body  # the silence counts from the stop, not the start

    time.sleep(3.0)  # the parties talk again
    ended = httpx.post(f"{lab.base}/api/v1/bridges/{bid}/end", headers=lab.auth, timeout=10)
    assert ended.status_code == 200, ended.text
    body = lab.wait(bid, lambda b: b["state"] == "ended", 10, "not ended")
    for role, phone in phones.items():
        phone.wait_event("CALL_CLOSED", 10, marks[role])
        phone.wait_recordings_complete(5)
        heard = phone.received_recordings()[-1]
        end = _wav_seconds(heard) - 0.5
        levels = tone_report(heard, TONES.values(), start=end - 2.0, end=end)
        for other, hz in TONES.items():
            if other != role:
                assert levels[hz] > HEARD_MIN_DB, f"{role} misses {other} after: {levels}"

    # the first segment was sealed by the stopping process, the second by the next one
    assert len(body["recordings"]) == 2, body
    first, second = (lab.get(f"/api/v1/recordings/{rid}") for rid in body["recordings"])
    assert (first["segment"], first["state"]) == (1, "finalised"), first
    assert first["health"]["ok"] and first["duration_s"] >= 1.5, first
    assert second["segment"] == 2, second


def test_with_recovery_off_a_stop_hangs_up_and_stores_the_call_ended_at_once(
    lab_factory: Callable[..., Lab],  # noqa: F811
    phone_factory: Callable[..., BaresipPhone],
    tmp_path: Path,
) -> None:
    lab = lab_factory("udp")
    lab.env["LINKCALL_RECOVER_CALLS"] = "false"
    phones = _phones(lab, phone_factory)
    bid = lab.start_bridge()
    lab.wait(bid, _all_connected, 30, "not connected")
    marks = {r: p.event_count() for r, p in phones.items()}
    _stop(lab)
    for role, phone in phones.items():  # BYE came during the stop
        phone.wait_event("CALL_CLOSED", 1.0, marks[role])

    # what the stopped process stored, read before any start could change it
    from sqlalchemy import create_engine, select
    from sqlalchemy.orm import Session

    from storage.models.call_records import Call

    engine = create_engine(f"sqlite:///{tmp_path / 'data' / 'linkcall.sqlite3'}")
    try:
        with Session(engine) as s:
            call = s.scalars(select(Call).where(Call.id == bid)).one()
            assert (call.state.value, call.end_reason, call.interrupted) == (
                "ended",
                "shutdown",
                True,
            ), call
            assert {leg.role: (leg.state, leg.end_reason) for leg in call.legs} == {
                r: ("left", "shutdown") for r in TONES
            }
    finally:
        engine.dispose()


def test_a_unit_still_ringing_at_a_planned_stop_is_cancelled_and_stored_ended_by_the_stop(
    lab_factory: Callable[..., Lab],  # noqa: F811
    phone_factory: Callable[..., BaresipPhone],
    tmp_path: Path,
) -> None:
    """Caller and dispatcher talk while the unit's phone rings: the stop CANCELs the ringing
    INVITE and stores the unit's leg ended `shutdown` itself; the next start carries the two
    on and sends nothing more to the unit (before, it sent the stored CANCEL again: 481)."""
    lab = lab_factory("udp")
    phones = _phones(lab, phone_factory, unit_answers=False)
    bid = lab.start_bridge()

    def two_up_unit_ringing(b: dict[str, object]) -> bool:
        legs = {leg["role"]: leg for leg in b["legs"]}  # type: ignore[attr-defined]
        return b["state"] == "connected" and legs["unit"]["state"] == "dialing"

    lab.wait(bid, two_up_unit_ringing, 30, "caller and dispatcher not connected")
    phones["unit"].wait_incoming(10)
    time.sleep(1.5)  # the ringing INVITE's CANCEL is stored by the writer
    marks = {r: p.event_count() for r, p in phones.items()}
    _stop(lab)
    stopped = datetime.now().astimezone()
    phones["unit"].wait_event("CALL_CLOSED", 1.0, marks["unit"])  # CANCELled during the stop
    for role in ("caller", "dispatcher"):
        assert "CALL_CLOSED" not in [e.get("type") for e in phones[role].events[marks[role] :]]

    from sqlalchemy import create_engine, select
    from sqlalchemy.orm import Session

    from storage.models.call_records import Call

    engine = create_engine(f"sqlite:///{tmp_path / 'data' / 'linkcall.sqlite3'}")
    try:  # what the stopped process stored, before any start
        with Session(engine) as s:
            call = s.scalars(select(Call).where(Call.id == bid)).one()
            unit = next(leg for leg in call.legs if leg.role == "unit")
            assert (call.state.value, unit.state, unit.end_reason) == (
                "connected",
                "left",
                "shutdown",
            ), (call.state, unit.state, unit.end_reason, unit.dialog)
            assert not unit.dialog, unit.dialog  # no CANCEL left for the next start
            assert unit.ended_at is not None and unit.ended_at <= stopped
    finally:
        engine.dispose()

    mark = phones["unit"].event_count()
    lab.service.start()
    body = lab.wait(bid, lambda b: b["resumed_at"] is not None, 5.0, "not carried on in 5 s")
    legs = {leg["role"]: leg for leg in body["legs"]}
    assert legs["caller"]["recovery"] == legs["dispatcher"]["recovery"] == "reinvite 200", legs
    assert legs["unit"]["recovery"] is None, legs["unit"]  # nothing sent to it again
    assert legs["unit"]["end_reason"] == "shutdown", legs["unit"]
    assert phones["unit"].event_count() == mark  # the unit's phone heard nothing more
    ended = httpx.post(f"{lab.base}/api/v1/bridges/{bid}/end", headers=lab.auth, timeout=10)
    assert ended.status_code == 200, ended.text
