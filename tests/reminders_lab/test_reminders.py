"""Roster reminder calls and the webhook on real peers (issue 11): a unit without next week's
roster is called and presses 1 (acknowledged); a unit whose phone never answers ends
no_answer after its retries; the county's receiver gets one signed roster.missing per unit."""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from storage import webhooks
from storage.engine import session_scope
from tests.reminders_lab.conftest import SECRET, Lab, ServiceStarter, WebhookReceiver, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SH = ZoneInfo("Asia/Shanghai")


def _week(offset: int) -> str:
    iso = (datetime.now(SH) + timedelta(weeks=offset)).isocalendar()
    return f"{iso.year}-W{iso.week:02d}"


def _unit(lab: Lab, code: str, name: str, fallback: str | None = None) -> None:
    body: dict[str, Any] = {"code": code, "name": name, "kind": "linkage"}
    if fallback:
        body["fallback_number"] = fallback
    assert lab.post("/api/v1/units", role="admin", json=body).status_code == 201


def _roster(lab: Lab, code: str, week: str, leader: str, staff: str) -> None:
    resp = lab.put(
        f"/api/v1/units/{code}/rosters/{week}",
        json={"leader": {"name": "赵主任", "phone": leader},
              "staff": [{"name": "值班员", "phone": staff, "order": 1}]},
    )  # fmt: skip
    assert resp.status_code == 201, resp.text


def _reminders(lab: Lab, week: str) -> dict[str, dict[str, Any]]:
    resp = lab.get("/api/v1/rosters/reminders", params={"week": week}, role="dispatcher")
    assert resp.status_code == 200, resp.text
    assert resp.json()["week"] == week
    return {u["unit_code"]: u for u in resp.json()["units"]}


def test_units_are_called_and_the_gateway_is_told(
    start_service: ServiceStarter, receiver: WebhookReceiver
) -> None:
    with start_service(webhook_url=receiver.url, webhook_secret=SECRET, webhook_poll_s=0.5) as lab:
        leader = lab.phone("2006", tone_hz=500.0)
        silent = lab.phone("2007", tone_hz=500.0, auto_answer=False)
        this_week, next_week = _week(0), _week(1)
        _unit(lab, "L31", "县供电公司", fallback="0833-4210031")
        _roster(lab, "L31", this_week, leader="2006", staff="2099")  # its latest: this week's
        _unit(lab, "L32", "县自来水公司", fallback="2007")  # never reported: its fallback
        _unit(lab, "L33", "县交通局", fallback="0833-4210033")
        _roster(lab, "L33", next_week, leader="2098", staff="2097")  # has reported: not called

        bad = lab.post("/api/v1/rosters/reminders", json={"week": "2026-W60"})
        assert bad.status_code == 422
        assert bad.headers["content-type"].startswith("application/problem+json")
        assert lab.post("/api/v1/rosters/reminders", role="dispatcher",
                        json={"week": next_week}).status_code == 403  # fmt: skip

        since_leader, since_silent = leader.event_count(), silent.event_count()
        resp = lab.post("/api/v1/rosters/reminders", json={"week": next_week})
        assert resp.status_code == 202, resp.text
        assert resp.json()["id"] and resp.json()["units"] == ["L31", "L32"]

        leader.wait_established(20, since_leader)
        time.sleep(1.5)  # into the prompt 您单位下周值班表尚未报备…收到请按1
        leader.send_dtmf("1")
        silent.wait_incoming(20, since_silent)  # the fallback really rang

        units = wait_for(
            lambda: _reminders(lab, next_week),
            lambda u: (
                u["L31"]["outcome"] == "acknowledged"
                and u["L32"]["outcome"] not in ("pending", "calling")
            ),
            90,
        )
        assert set(units) == {"L31", "L32"}
        ack = units["L31"]
        assert ack["number"] == "2006"  # the leader of its latest roster
        assert [(a["outcome"], a["key"]) for a in ack["attempts"]] == [("answer", "1")]
        assert ack["attempts"][0]["recording_id"]
        gone = units["L32"]
        assert gone["outcome"] == "no_answer" and gone["number"] == "2007"
        assert [a["outcome"] for a in gone["attempts"]] == ["no_answer", "no_answer"]  # 2 tries
        calls = lab.get("/api/v1/calls", params={"kind": "reminder"}).json()
        assert len(calls) == 3

        # the county's receiver: one signed roster.missing per missing unit, none for L33
        wait_for(lambda: len(receiver.events("roster.missing")), lambda n: n >= 2, 30)
        time.sleep(1.5)  # nothing more arrives
        missing = receiver.events("roster.missing")
        assert sorted(r.body["data"]["unit_code"] for r in missing) == ["L31", "L32"]
        assert all(r.signature_ok for r in missing)
        assert {r.body["data"]["week"] for r in missing} == {next_week}
        assert "尚未报备" in missing[0].body["data"]["message"]
        with session_scope(lab.live.app.state.service.session_factory) as s:
            stored = webhooks.list_events(s, event="roster.missing")
        assert len(stored) == 2 and all(e.delivered_at is not None for e in stored)


def test_a_wrong_secret_is_refused_by_the_receiver_and_kept_for_retry(
    start_service: ServiceStarter, receiver: WebhookReceiver
) -> None:
    with start_service(
        webhook_url=receiver.url, webhook_secret="not-the-county-secret",
        webhook_poll_s=0.3, webhook_retry_s=0.5, webhook_max_delay_s=1.0,
        survey_enabled=False,
    ) as lab:  # fmt: skip
        _unit(lab, "L35", "县城管局", fallback="0833-4210035")
        assert lab.post("/api/v1/rosters/reminders", json={"week": _week(1)}).status_code == 202
        wait_for(lambda: len(receiver.received), lambda n: n >= 2, 20)
        assert not any(r.signature_ok for r in receiver.received)
        first = receiver.received[0]
        assert first.event == "roster.missing" and first.body["data"]["unit_code"] == "L35"
        with session_scope(lab.live.app.state.service.session_factory) as s:
            (event,) = webhooks.list_events(s, event="roster.missing")
        assert event.delivered_at is None and event.attempts >= 2
        assert event.last_error == "HTTP 401"
        # every retry carries the same body, so the same (wrong) signature
        assert len({r.body["id"] for r in receiver.received}) == 1
