"""Incidents and surveys through the HTTP API: lifecycle, timeline, roles, validation."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest


@pytest.fixture
def app_api(api):  # type: ignore[no-untyped-def]
    """The API with units U01 and U02 and surveys due 10 minutes after close."""
    service = api.client.app.state.service
    service.settings = service.settings.model_copy(
        update={"survey_delay_after_close_s": 600, "survey_hours": "00:00-23:59:59.999999"}
    )
    for code, name in (("U01", "县供电公司"), ("U02", "县自来水公司")):
        r = api.client.post(
            "/api/v1/units", json={"code": code, "name": name, "kind": "linkage"},
            headers=api.auth("admin"),
        )  # fmt: skip
        assert r.status_code == 201, r.text
    return api


def _incident(api: Any, **over: Any) -> dict[str, Any]:
    body = {"reporter_number": "138 1234 5678", "category": "non_police", "type": "utility",
            "summary": "小区停电 / power cut"} | over  # fmt: skip
    r = api.client.post("/api/v1/incidents", json=body, headers=api.auth("dispatcher"))
    assert r.status_code == 201, r.text
    return r.json()  # type: ignore[no-any-return]


def test_lifecycle_timeline_and_survey_on_close(app_api: Any) -> None:
    api = app_api
    inc = _incident(api)
    assert (inc["state"], inc["reporter_number"]) == ("received", "+8613812345678")
    iid = inc["id"]
    post = api.client.post
    r = post(f"/api/v1/incidents/{iid}/divert", json={"unit_code": "U01"},
             headers=api.auth("dispatcher"))  # fmt: skip
    assert (r.status_code, r.json()["state"], r.json()["unit_code"]) == (200, "diverted", "U01")
    r = post(f"/api/v1/incidents/{iid}/accept", headers=api.auth("unit"))
    assert r.json()["state"] == "accepted"
    before = datetime.now(UTC)
    r = post(f"/api/v1/incidents/{iid}/close", json={"feedback": "已恢复供电"},
             headers=api.auth("unit"))  # fmt: skip
    closed = r.json()
    assert (closed["state"], closed["feedback"]) == ("closed", "已恢复供电")
    assert closed["survey_id"]
    survey = api.client.get(f"/api/v1/surveys/{closed['survey_id']}",
                            headers=api.auth("dispatcher")).json()  # fmt: skip
    assert (survey["status"], survey["number"], survey["incident_id"]) == (
        "pending", "+8613812345678", iid)  # fmt: skip
    due = datetime.fromisoformat(survey["next_attempt_at"])
    assert before + timedelta(seconds=600) <= due <= datetime.now(UTC) + timedelta(seconds=600)

    steps = api.client.get(f"/api/v1/incidents/{iid}/timeline", headers=api.auth("unit")).json()
    assert [(s["from_state"], s["to_state"]) for s in steps] == [
        (None, "received"), ("received", "diverted"), ("diverted", "accepted"),
        ("accepted", "closed"),
    ]  # fmt: skip
    assert [s["actor"] for s in steps] == ["dispatcher", "dispatcher", "unit U01", "unit U01"]
    again = post(f"/api/v1/incidents/{iid}/accept", headers=api.auth("unit"))
    assert again.status_code == 409
    bus = api.client.app.state.service.events
    deadline = time.monotonic() + 5
    while len([e for e in bus.since(0) if e.type.startswith("incident.")]) < 4:
        assert time.monotonic() < deadline, [e.type for e in bus.since(0)]
        time.sleep(0.02)
    seen = [e.type for e in bus.since(0) if e.data.get("id") == iid]
    assert seen == [
        "incident.received",
        "incident.diverted",
        "incident.accepted",
        "incident.closed",
    ]


def test_units_act_only_on_their_own_incidents(app_api: Any) -> None:
    api = app_api
    iid = _incident(api)["id"]
    r = api.client.post(f"/api/v1/incidents/{iid}/divert", json={"unit_code": "U01"},
                        headers=api.auth("unit"))  # fmt: skip
    assert r.status_code == 403  # units do not divert
    api.client.post(f"/api/v1/incidents/{iid}/divert", json={"unit_code": "U01"},
                    headers=api.auth("dispatcher"))  # fmt: skip
    for path in ("accept", "close"):
        r = api.client.post(f"/api/v1/incidents/{iid}/{path}", json={"feedback": "x"},
                            headers=api.auth("unit2"))  # fmt: skip
        assert r.status_code == 403, path
    assert api.client.get(f"/api/v1/incidents/{iid}", headers=api.auth("unit2")).status_code == 403
    other = _incident(api)["id"]
    mine = api.client.get("/api/v1/incidents", headers=api.auth("unit")).json()
    assert [i["id"] for i in mine] == [iid]
    every = api.client.get("/api/v1/incidents", headers=api.auth("supervisor")).json()
    assert {i["id"] for i in every} == {iid, other}
    assert (
        api.client.post("/api/v1/incidents", json={}, headers=api.auth("unit")).status_code == 403
    )


def test_list_filters(app_api: Any) -> None:
    api = app_api
    police = _incident(api, category="police", type="theft",
                       received_at="2026-11-01T10:00:00+08:00")["id"]  # fmt: skip
    _incident(api, received_at="2026-11-20T10:00:00+08:00")
    get = api.client.get
    h = api.auth("dispatcher")
    assert [i["id"] for i in get("/api/v1/incidents?category=police", headers=h).json()] == [police]
    r = get("/api/v1/incidents", params={"to": "2026-11-10T00:00:00+08:00"}, headers=h)
    assert [i["id"] for i in r.json()] == [police]
    # a police matter is closed by the center without diverting
    r = api.client.post(f"/api/v1/incidents/{police}/close", json={"feedback": "已处警"}, headers=h)
    assert r.json()["state"] == "closed"
    assert [i["id"] for i in get("/api/v1/incidents?state=closed", headers=h).json()] == [police]


def test_invalid_numbers_and_units_are_422_naming_the_field(app_api: Any) -> None:
    api = app_api
    h = api.auth("dispatcher")
    r = api.client.post("/api/v1/incidents", json={"reporter_number": "12", "category": "police",
                        "type": "x", "summary": "y"}, headers=h)  # fmt: skip
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "reporter_number"
    iid = _incident(api)["id"]
    r = api.client.post(f"/api/v1/incidents/{iid}/divert", json={"unit_code": "NOPE"}, headers=h)
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "unit_code"
    for number, reason in (("abc", "phone number"), ("110", "emergency"),
                           ("+1 212 555 0100", "international")):  # fmt: skip
        r = api.client.post("/api/v1/surveys", json={"number": number}, headers=h)
        assert r.status_code == 422, number
        err = r.json()["errors"][0]
        assert err["field"] == "number" and reason in err["message"], err


def test_post_survey_list_and_cancel(app_api: Any) -> None:
    api = app_api
    h = api.auth("dispatcher")
    later = "2030-01-02T09:00:00+08:00"
    r = api.client.post("/api/v1/surveys", json={"number": "0833-4212345", "not_before": later},
                        headers=h)  # fmt: skip
    assert r.status_code == 201, r.text
    s = r.json()
    assert s["number"] == "+868334212345"
    assert datetime.fromisoformat(s["next_attempt_at"]) == datetime.fromisoformat(later)
    listed = api.client.get("/api/v1/surveys?status=pending", headers=h).json()
    assert [x["id"] for x in listed] == [s["id"]]
    assert api.client.get("/api/v1/surveys?status=answered", headers=h).json() == []
    r = api.client.post(f"/api/v1/surveys/{s['id']}/cancel", headers=h)
    assert r.json()["status"] == "cancelled"
    assert api.client.post(f"/api/v1/surveys/{s['id']}/cancel", headers=h).status_code == 409
    assert api.client.get("/api/v1/surveys/nope", headers=h).status_code == 404
    r = api.client.post("/api/v1/surveys", json={"number": "13812345678", "incident_id": "nope"},
                        headers=h)  # fmt: skip
    assert r.status_code == 404
