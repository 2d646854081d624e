"""LINKCALL_MEDIA_WORKERS=2 with real phones (baresip via Kamailio): the RTP engine runs in two
worker processes. A recorded three-way bridge: each phone hears the other two, the recording is
sealed and verifies; a unit confirms with key 1 (prompt and DTMF detection in a worker); a
worker killed under a live bridge ends its legs 'media_lost' and the service goes on."""

from __future__ import annotations

import hashlib
import os
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from lab import ports
from lab.audio import tone_report
from lab.baresip import BaresipPhone
from lab.kamailio import Kamailio
from tests.bridges.conftest import BridgeLab, leg, live_lab
from tests.bridges.test_bridge_api import (
    HEARD_MIN_DB,
    SILENT_MAX_DB,
    TONES,
    USERS,
    _bridge,
    _connected,
    _download,
    _ended,
    _phones,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]

WORKERS = {"media_workers": 2}
WITH_METRICS = {**WORKERS, "metrics_listen": lambda _r: f"127.0.0.1:{ports.sip_port()}"}


def _media(lab: BridgeLab) -> Any:
    return lab.live.app.state.service.telephony.media


def _wait_finalised(lab: BridgeLab, rec_id: str, state: str = "finalised") -> dict[str, Any]:
    deadline = time.monotonic() + 15
    while True:
        meta: dict[str, Any] = lab.get(f"/api/v1/recordings/{rec_id}").json()
        if meta["state"] == state or time.monotonic() > deadline:
            return meta
        time.sleep(0.2)


@pytest.mark.parametrize("bridge_lab", [WITH_METRICS], indirect=True)
def test_a_recorded_bridge_on_media_workers_is_heard_by_all_and_sealed(
    bridge_lab: BridgeLab, tmp_path: Path
) -> None:
    media = _media(bridge_lab)
    assert len(media.workers) == 2 and all(w.alive for w in media.workers)
    phones = _phones(bridge_lab)
    created = _bridge(bridge_lab, {"number": USERS["unit"]})
    bridge_lab.wait_bridge(created["id"], _connected)
    assert sorted(w.legs for w in media.workers) == [0, 3]  # the call lives on one worker
    time.sleep(4.0)
    addr = bridge_lab.live.app.state.service.settings.metrics_listen
    metrics = httpx.get(f"http://{addr}/metrics", timeout=10).text  # the workers' tick figures
    ticks = next(
        float(line.split()[-1])
        for line in metrics.splitlines()
        if line.startswith("linkcall_media_tick_lag_seconds_count")
    )
    assert ticks > 200, ticks
    assert bridge_lab.post(f"/api/v1/bridges/{created['id']}/end").status_code == 200
    body = bridge_lab.wait_bridge(created["id"], _ended)
    assert body["state"] == "ended"
    for role, phone in phones.items():
        phone.wait_closed(10)
        levels = tone_report(phone.received_recordings()[-1], TONES.values(), start=1.0)
        for other, hz in TONES.items():
            if other == role:
                assert levels[hz] < SILENT_MAX_DB, f"{role} hears itself: {levels}"
            else:
                assert levels[hz] > HEARD_MIN_DB, f"{role} misses {other}: {levels}"
    meta = _wait_finalised(bridge_lab, body["recording_id"])
    assert meta["state"] == "finalised" and meta["health"]["ok"], meta
    assert set(meta["tracks"]) == {"mixed", "caller", "dispatcher", "unit"}
    for role, hz in TONES.items():
        track = _download(bridge_lab, meta["id"], role, tmp_path)
        assert hashlib.sha256(track.read_bytes()).hexdigest() == meta["tracks"][role]["sha256"]
        assert tone_report(track, [hz], start=1.0)[hz] > HEARD_MIN_DB


@pytest.fixture
def confirm_lab(
    tmp_path: Path,
    kamailio_factory: Callable[..., Kamailio],
    lab_users: dict[str, str],
    phone_factory: Callable[..., BaresipPhone],
) -> Iterator[BridgeLab]:
    kam = kamailio_factory()
    with live_lab(
        tmp_path,
        kam,
        lab_users,
        phone_factory,
        unit_confirm=True,
        unit_confirm_timeout_s=2.0,
        ring_timeout_unit_s=10.0,
        **WORKERS,
    ) as lab:
        yield lab


def test_a_unit_confirms_with_key_1_through_a_media_worker(confirm_lab: BridgeLab) -> None:
    phones = _phones(confirm_lab)
    phones["unit"].press_on_answer("1", delay_s=1.0)
    bid = _bridge(confirm_lab, {"number": USERS["unit"]})["id"]
    body = confirm_lab.wait_bridge(bid, _connected, timeout=40)
    attempt = leg(body, "unit")["attempts"][0]
    assert attempt["result"] == "answered" and attempt["confirmed_at"] is not None
    confirm_lab.post(f"/api/v1/bridges/{bid}/end")
    confirm_lab.wait_bridge(bid, _ended)


@pytest.mark.parametrize("bridge_lab", [WORKERS], indirect=True)
def test_a_killed_media_worker_ends_its_bridge_media_lost_and_the_service_goes_on(
    bridge_lab: BridgeLab,
) -> None:
    media = _media(bridge_lab)
    _phones(bridge_lab)
    bid = _bridge(bridge_lab, {"number": USERS["unit"]})["id"]
    bridge_lab.wait_bridge(bid, _connected)
    time.sleep(2.0)
    worker = next(w for w in media.workers if w.legs)
    os.kill(worker.proc.pid, signal.SIGKILL)
    body = bridge_lab.wait_bridge(bid, lambda b: b["state"] in ("ended", "failed"), timeout=15)
    reasons = [leg(body, r)["end_reason"] for r in ("caller", "dispatcher", "unit")]
    # the first leg the flow hears of ends 'media_lost'; the bridge then ends the others
    assert "media_lost" in reasons and set(reasons) <= {"media_lost", "bridge_ended"}, reasons
    assert {leg(body, r)["state"] for r in ("caller", "dispatcher", "unit")} == {"left"}
    meta = _wait_finalised(bridge_lab, body["recording_id"], "interrupted")
    # sealed by crash recovery: what reached the disk (flushed each second) is kept
    assert meta["state"] == "interrupted" and meta["health"]["ok"], meta
    assert set(meta["tracks"]) == {"mixed", "caller", "dispatcher", "unit"}
    assert meta["duration_s"] >= 1.0, meta
    deadline = time.monotonic() + 15
    while not all(w.alive for w in media.workers):
        assert time.monotonic() < deadline, "the lost worker was not replaced"
        time.sleep(0.2)
    assert bridge_lab.get("/readyz").status_code == 200
    again = _bridge(bridge_lab, {"number": USERS["unit"]})["id"]  # the next call works
    bridge_lab.wait_bridge(again, _connected)
    bridge_lab.post(f"/api/v1/bridges/{again}/end")
    bridge_lab.wait_bridge(again, _ended)
