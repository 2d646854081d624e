"""GET /api/v1/calls finds calls by a party's number (full, or the last digits, on the stored
E.164), unit, kind, state, incident and time, newest first with a cursor; the searched number
never reaches the access log unmasked."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from api.logs import MaskNumbersFilter
from storage.engine import session_scope
from storage.models.call_records import Attempt, Call, CallKind, CallState, Leg

T0 = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)  # 10:00 in Beijing


def _seed(api: Any) -> list[str]:
    """Six calls, one a minute from T0 (the last is the newest)."""
    specs = [
        (CallKind.BRIDGE, CallState.ENDED, "L01", "I-1", "+8613812345678", "+868334212345"),
        (CallKind.BRIDGE, CallState.FAILED, "L02", None, "+8613900005678", "2003"),
        (CallKind.INBOUND, CallState.ENDED, None, None, "+8613712340000", None),
        (CallKind.CALLBACK, CallState.ENDED, None, "I-1", "+8613812345678", None),
        (CallKind.BRIDGE, CallState.CONNECTED, "L01", None, "2001", "+868334212346"),
        (CallKind.DUTY_CHECK, CallState.ENDED, "L03", None, "+868334219999", None),
    ]
    ids = []
    with session_scope(api.session_factory) as s:
        for i, (kind, state, unit, incident, first, second) in enumerate(specs):
            call = Call(kind=kind, state=state, unit_code=unit, incident_id=incident,
                        created_at=T0 + timedelta(minutes=i))  # fmt: skip
            call.legs.append(Leg(role="caller", number=first))
            if second is not None:
                call.legs.append(Leg(role="unit", number=None))  # dialled through attempts
                call.attempts.append(Attempt(role="unit", leg_key="unit", number=second))
            s.add(call)
            s.flush()
            ids.append(call.id)
    return ids


def _ids(api: Any, **params: Any) -> list[str]:
    r = api.client.get("/api/v1/calls", params=params, headers=api.auth("dispatcher"))
    assert r.status_code == 200, r.text
    return [c["id"] for c in r.json()]


def test_a_call_is_found_by_the_full_number_or_its_last_digits(api: Any) -> None:
    ids = _seed(api)
    full = [ids[3], ids[0]]  # newest first
    for written in ("13812345678", "138 1234 5678", "+86 138-1234-5678", "008613812345678"):
        assert _ids(api, number=written) == full, written
    assert _ids(api, number="5678") == [ids[3], ids[1], ids[0]]
    assert _ids(api, number="2345") == [ids[0]]  # the unit's landline, dialled as an attempt
    assert _ids(api, number="0833-4212346") == [ids[4]]  # a full landline matches exactly
    assert _ids(api, number="2001") == [ids[4]]  # an extension: its digits
    assert _ids(api, number="5678", kind="callback") == [ids[3]]
    for bad in ("12", "abc", "138x5678"):
        r = api.client.get("/api/v1/calls", params={"number": bad}, headers=api.auth("dispatcher"))
        assert r.status_code == 422, bad
        assert r.json()["errors"][0]["field"] == "number"


def test_filters_by_unit_kind_state_incident_and_time(api: Any) -> None:
    ids = _seed(api)
    assert _ids(api, unit="L01") == [ids[4], ids[0]]
    assert _ids(api, unit_code="L01", state="connected") == [ids[4]]
    assert _ids(api, kind="bridge") == [ids[4], ids[1], ids[0]]
    assert _ids(api, incident_id="I-1") == [ids[3], ids[0]]
    window = {"from": "2026-12-01T10:01:00+08:00", "to": "2026-12-01T10:03:00+08:00"}
    assert _ids(api, **window) == [ids[2], ids[1]]
    r = api.client.get(
        "/api/v1/calls", params={"from": "2026-12-01T10:01:00"}, headers=api.auth("dispatcher")
    )
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "from"
    assert api.client.get("/api/v1/calls", headers=api.auth("unit")).status_code == 403


def test_cursor_pages_cover_every_call_once_newest_first(api: Any) -> None:
    ids = _seed(api)
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 4}
        if cursor:
            params["cursor"] = cursor
        r = api.client.get("/api/v1/calls", params=params, headers=api.auth("dispatcher"))
        assert r.status_code == 200, r.text
        seen += [c["id"] for c in r.json()]
        pages += 1
        cursor = r.headers.get("x-next-cursor")
        if not cursor:
            break
    assert pages == 2 and seen == list(reversed(ids))
    filtered = api.client.get(
        "/api/v1/calls", params={"number": "5678", "limit": 2}, headers=api.auth("dispatcher")
    )
    assert [c["id"] for c in filtered.json()] == [ids[3], ids[1]]
    nxt = filtered.headers["x-next-cursor"]
    assert _ids(api, number="5678", limit=2, cursor=nxt) == [ids[0]]
    r = api.client.get("/api/v1/calls", params={"cursor": "nope"}, headers=api.auth("dispatcher"))
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "cursor"


def test_the_access_log_masks_a_searched_number(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("uvicorn.access.test")
    logger.addFilter(MaskNumbersFilter())
    with caplog.at_level(logging.INFO, logger="uvicorn.access.test"):
        logger.info(
            '%s - "%s %s HTTP/%s" %d',
            "127.0.0.1:50000",
            "GET",
            "/api/v1/calls?kind=bridge&number=%2B86%20138%201234%205678&limit=5",
            "1.1",
            200,
        )
        logger.info('%s - "%s %s HTTP/%s" %d', "x", "GET", "/api/v1/calls?number=5678", "1.1", 200)
    text = caplog.text
    assert "1234" not in text and "138" not in text.replace("+86%20", "")
    assert "kind=bridge" in text and "limit=5" in text and "number=" in text
    assert "5678" not in text
