"""Issue 14 on a real bridge (lab phones through Kamailio): /metrics shows the call, its legs
and its dial attempts and never a phone number; the service's log of the call, in JSON and in
text, carries the call id, the leg and the date, and never a full phone number; with the disk
under LINKCALL_DISK_MIN_FREE_MB readiness degrades and the call still connects and is recorded."""

from __future__ import annotations

import io
import json
import logging
import re
import time
from collections.abc import Iterator
from datetime import datetime

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from api.logs import JsonFormatter, TextFormatter
from lab import ports
from tests.bridges.conftest import BridgeLab

pytestmark = [pytest.mark.integration, pytest.mark.slow]

USERS = {"caller": "2001", "dispatcher": "2002", "unit": "2003"}
NUMBERS = tuple(USERS.values())


def _metrics_port(_request: object) -> str:
    return f"127.0.0.1:{ports.sip_port()}"


def _number_in(text: str) -> list[str]:
    """Phone numbers of the lab phones standing as a token (as in `sip:2001@…`, `"2001"`)."""
    return [
        m.group(0)
        for n in NUMBERS
        for m in re.finditer(rf"(?<![0-9A-Za-z]){n}(?![0-9A-Za-z])", text)
    ]


def _scrape(lab: BridgeLab) -> tuple[str, dict[tuple[str, tuple[tuple[str, str], ...]], float]]:
    addr = lab.live.app.state.service.settings.metrics_listen
    text = httpx.get(f"http://{addr}/metrics", timeout=10).text
    samples: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return text, samples


def _value(samples: dict, name: str, **labels: str) -> float:  # type: ignore[type-arg]
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)  # type: ignore[no-any-return]


def _no_numbers_in_exposition(text: str) -> None:
    """No lab number in any name, label or help text (sample values are counts, not numbers
    of anyone: a counter may well reach 2001)."""
    for line in text.splitlines():
        if not line.startswith("#"):
            line = line.rsplit(" ", 1)[0]  # drop the sample value
        assert not _number_in(line), f"phone number in the exposition: {line}"


@pytest.fixture
def captured_logs() -> Iterator[tuple[io.StringIO, io.StringIO]]:
    """The service's log records as the JSON and text formats write them."""
    json_out, text_out = io.StringIO(), io.StringIO()
    handlers = [logging.StreamHandler(json_out), logging.StreamHandler(text_out)]
    handlers[0].setFormatter(JsonFormatter(node="lab-node"))
    handlers[1].setFormatter(TextFormatter(node="lab-node"))
    root = logging.getLogger()
    old_level = root.level
    root.setLevel(logging.DEBUG)
    for h in handlers:
        root.addHandler(h)
    try:
        yield json_out, text_out
    finally:
        for h in handlers:
            root.removeHandler(h)
        root.setLevel(old_level)


# the disk counts as low throughout: readiness degrades, the call still connects and is recorded
LOW_DISK = {"metrics_listen": _metrics_port, "disk_min_free_mb": 10**9}


@pytest.mark.parametrize("bridge_lab", [LOW_DISK], indirect=True)
def test_metrics_and_logs_of_a_real_bridge(
    bridge_lab: BridgeLab, captured_logs: tuple[io.StringIO, io.StringIO]
) -> None:
    phones = {role: bridge_lab.phone(user) for role, user in USERS.items()}
    _, before = _scrape(bridge_lab)
    assert _value(before, "linkcall_sip_registered") == 1.0
    assert _value(before, "linkcall_calls_active", kind="bridge") == 0.0
    assert _value(before, "linkcall_disk_low") == 1.0
    ready = bridge_lab.http.get("/readyz")
    assert ready.status_code == 503 and ready.json()["checks"]["evidence"]["ok"] is False

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
    bridge_lab.wait_bridge(
        call_id,
        lambda b: b["state"] == "connected" and all(x["state"] == "connected" for x in b["legs"]),
    )
    time.sleep(1.0)

    text, during = _scrape(bridge_lab)
    _no_numbers_in_exposition(text)
    assert call_id not in text
    assert _value(during, "linkcall_calls_active", kind="bridge") == 1.0
    for role in USERS:
        assert _value(during, "linkcall_legs_active", role=role) == 1.0, role
        assert (
            _value(during, "linkcall_dial_attempts_total", role=role, result="answered") == 1.0
        ), role
    assert _value(during, "linkcall_media_tick_lag_seconds_count") > 20
    assert _value(during, "linkcall_rtp_packets_lost_total") >= 0.0
    assert _value(during, "linkcall_recordings_total", state="recording") == 1.0
    routes = {labels for (name, labels) in during if name == "linkcall_http_request_seconds_count"}
    get_bridge = (("method", "GET"), ("route", "/api/v1/bridges/{bridge_id}"), ("status", "2xx"))
    assert get_bridge in routes
    assert (("method", "POST"), ("route", "/api/v1/bridges"), ("status", "2xx")) in routes

    assert bridge_lab.post(f"/api/v1/bridges/{call_id}/end").status_code == 200
    bridge_lab.wait_bridge(call_id, lambda b: b["state"] == "ended")
    for phone in phones.values():
        phone.wait_closed(10)
    deadline = time.monotonic() + 10
    while True:
        text, after = _scrape(bridge_lab)
        if _value(after, "linkcall_recordings_total", state="finalised") == 1.0:
            break
        assert time.monotonic() < deadline, "recording never finalised"
        time.sleep(0.2)
    _no_numbers_in_exposition(text)
    assert _value(after, "linkcall_calls_active", kind="bridge") == 0.0
    for role in USERS:
        assert _value(after, "linkcall_legs_active", role=role) == 0.0, role
        assert _value(after, "linkcall_dial_attempts_total", role=role, result="answered") == 1.0

    # the call's log: every line one JSON object with a dated, offset timestamp; the call's
    # records carry its id and their leg; no full lab number anywhere, in either format
    json_log, text_log = (s.getvalue() for s in captured_logs)
    records = [json.loads(line) for line in json_log.splitlines()]
    assert len(records) > 10
    for rec in records:
        assert {"ts", "level", "logger", "msg", "node"} <= rec.keys(), rec
        ts = datetime.fromisoformat(rec["ts"])
        assert ts.utcoffset() is not None and re.match(r"\d{4}-\d\d-\d\dT", rec["ts"])
    mine = [r for r in records if r.get("call_id") == call_id]
    assert any(r.get("leg") == "unit-1" and "dialling" in r["msg"] for r in mine), mine
    assert {r["logger"] for r in mine} >= {"calls.runner"}
    assert not _number_in(json_log), _number_in(json_log)
    assert not _number_in(text_log), _number_in(text_log)
    assert f"[call={call_id} leg=unit-1]" in text_log
    assert re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[+-]\d\d:\d\d ", text_log)
