"""Issue 14: a full disk never costs an emergency call. The disk refuses every write of the
recording (ENOSPC at the recordings' one I/O seam, `recordings.wavfile.pwrite`) for longer than
a recording holds in memory (30 s) while a real bridge of three lab phones runs, then has room
again: the parties keep hearing each other, the call ends normally, and the sealed recording
says how much audio it lost; the metrics count the write errors and the gap."""

from __future__ import annotations

import errno
import os
import time

import pytest
from prometheus_client import generate_latest
from pytest_mock import MockerFixture

from lab.audio import tone_report
from tests.bridges.conftest import BridgeLab

pytestmark = [pytest.mark.integration, pytest.mark.slow]

USERS = {"caller": "2001", "dispatcher": "2002", "unit": "2003"}
TONES = {"caller": 400.0, "dispatcher": 1000.0, "unit": 1800.0}
REAL_PWRITE = os.pwrite
FULL_S = 34.0  # longer than the 30 s a recording keeps in memory: some audio is lost


def test_a_full_disk_keeps_the_call_and_records_the_gap(
    bridge_lab: BridgeLab, mocker: MockerFixture
) -> None:
    phones = {role: bridge_lab.phone(USERS[role], tone_hz=hz) for role, hz in TONES.items()}
    resp = bridge_lab.post(
        "/api/v1/bridges",
        json={
            "caller": {"number": USERS["caller"]},
            "dispatcher": {"number": USERS["dispatcher"]},
            "unit": {"number": USERS["unit"]},
        },
    )
    assert resp.status_code == 202, resp.text
    call_id = resp.json()["id"]

    def connected(b: dict) -> bool:  # type: ignore[type-arg]
        return b["state"] == "connected" and all(x["state"] == "connected" for x in b["legs"])

    bridge_lab.wait_bridge(call_id, connected)
    refused = {"n": 0}

    def full_disk(fd: int, data: bytes | memoryview, offset: int) -> int:
        if offset + len(data) <= os.fstat(fd).st_size:  # rewriting a header in place
            return REAL_PWRITE(fd, data, offset)
        refused["n"] += 1
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    patch = mocker.patch("recordings.wavfile.pwrite", full_disk)
    time.sleep(FULL_S)
    body = bridge_lab.get(f"/api/v1/bridges/{call_id}").json()
    assert connected(body), body  # the call goes on
    mocker.stop(patch)  # room again: the writer catches up and goes on recording
    time.sleep(3.0)
    assert bridge_lab.post(f"/api/v1/bridges/{call_id}/end").status_code == 200
    body = bridge_lab.wait_bridge(call_id, lambda b: b["state"] == "ended" and b["recording_id"])
    assert refused["n"] > 0

    # the parties heard each other throughout, also while nothing reached the disk
    for role, phone in phones.items():
        phone.wait_closed(10)
        levels = tone_report(phone.received_recordings()[-1], TONES.values(), start=1.0)
        for other, hz in TONES.items():
            if other != role:
                assert levels[hz] > -30.0, f"{role} misses {other}: {levels}"

    deadline = time.monotonic() + 15
    while True:
        meta = bridge_lab.get(f"/api/v1/recordings/{body['recording_id']}", "supervisor").json()
        if meta["state"] != "recording":
            break
        assert time.monotonic() < deadline, meta
        time.sleep(0.2)
    assert meta["state"] == "finalised", meta
    lost = float(meta["error"].split("lost ", 1)[1].split(" s", 1)[0])
    assert 2.0 <= lost <= FULL_S - 28.0, meta  # the gap is on the record, the rest was kept
    assert meta["health"]["ok"] is False, meta  # a recording with a hole is not shown healthy
    assert "audio_lost" in {f["problem"] for f in meta["health"]["findings"]}, meta
    svc = bridge_lab.live.app.state.service  # type: ignore[attr-defined]
    text = generate_latest(svc.metrics.registry).decode()
    assert 'linkcall_recording_problems_total{kind="audio_lost"} 1.0' in text
    assert 'linkcall_recording_problems_total{kind="write_error"}' in text
