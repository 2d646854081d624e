"""The console in a real browser against a real service (no phones needed): the page and its
headers, refused numbers, a wrong token, the duty view and the satisfaction statistics."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import LiveService
from tests.console.conftest import Console

pytestmark = [pytest.mark.integration]


def _admin(live: LiveService) -> httpx.Client:
    return httpx.Client(base_url=live.base_url, headers=live.auth("admin"), timeout=10)


def _signed_in(live: LiveService, page: Any, role: str = "dispatcher") -> Console:
    ui = Console(page, live.base_url)
    ui.open()
    ui.login(live.tokens[role])
    page.wait_for_selector("#logout-btn:not([hidden])")
    return ui


def test_page_and_assets_are_served_without_a_token_under_a_self_only_csp(
    live_api: LiveService,
) -> None:
    with httpx.Client(base_url=live_api.base_url) as http:
        page = http.get("/console")
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        csp = page.headers["content-security-policy"]
        assert "default-src 'self'" in csp and "script-src 'self'" in csp
        assert "unsafe-inline" not in csp and "http" not in csp
        assert "三方通话" in page.text
        assets = (
            ("console.js", "javascript"),
            ("bridge_units.js", "javascript"),
            ("console.css", "css"),
        )
        for name, kind in assets:
            asset = http.get(f"/console/static/{name}")
            assert asset.status_code == 200 and kind in asset.headers["content-type"]
            assert asset.headers["content-security-policy"] == csp
        assert http.get("/console/static/index.html").status_code == 404
        assert http.get("/console/static/..%2F..%2Fapp.py").status_code == 404
        assert http.get("/api/v1/calls").status_code == 401  # the data still needs a token


def test_a_refused_number_shows_the_422_next_to_the_field_and_dials_nothing(
    live_api: LiveService, browser_page: Any, tmp_path: Path
) -> None:
    page = browser_page
    ui = _signed_in(live_api, page)
    page.click("#bridge-submit")  # empty form: told in the page, nothing sent
    assert page.locator(".field[data-field='caller'].invalid").count() == 1
    assert "请填写群众号码" in page.inner_text(".field[data-field='caller'] .field-error")

    page.fill("#f-caller", "+44 20 7946 0958")
    page.fill("#f-dispatcher", "2002")
    page.fill("#f-unit-number", "2003")
    page.click("#bridge-submit")
    page.wait_for_selector(".field[data-field='caller'].invalid .field-error div")
    error = page.inner_text(".field[data-field='caller'] .field-error")
    assert "不允许拨打此号码" in error and "international" in error
    message = page.inner_text("#bridge-msg")
    assert "号码不可拨打" in message and "HTTP 422" in message
    assert page.locator(".field[data-field='dispatcher'].invalid").count() == 0
    assert page.is_visible("#view-bridge")  # stays on the form
    page.screenshot(path=str(tmp_path / "console-refused.png"), full_page=True)

    # an unknown number format on the unit field lands next to the unit field
    page.fill("#f-caller", "2001")
    page.fill("#f-unit-number", "12")
    page.click("#bridge-submit")
    page.wait_for_selector(".field[data-field='unit'].invalid .field-error div")
    assert page.locator(".field[data-field='caller'].invalid").count() == 0

    with httpx.Client(base_url=live_api.base_url, headers=live_api.auth("dispatcher")) as http:
        assert http.get("/api/v1/calls").json() == []
    assert ui.errors == [] or all("422" in e for e in ui.errors), ui.errors


def test_a_wrong_token_is_refused_with_a_clear_message_and_not_kept(
    live_api: LiveService, browser_page: Any
) -> None:
    page = browser_page
    ui = Console(page, live_api.base_url)
    ui.open()
    ui.login("not-a-real-token")
    page.wait_for_selector("#auth-msg:not([hidden])")
    assert "令牌无效、已吊销或已过期" in page.inner_text("#auth-msg")
    assert page.evaluate("sessionStorage.getItem('linkcall.token')") is None
    assert page.inner_text("#whoami") == ""
    assert "not-a-real-token" not in page.url

    ui.login(live_api.tokens["dispatcher"])
    page.wait_for_selector("#whoami:has-text('调度员')")
    assert page.is_hidden("#auth-msg")
    page.wait_for_selector("#live[data-state='on']")
    page.reload()  # the token survives a reload of the tab (sessionStorage), not a new tab
    page.wait_for_selector("#whoami:has-text('调度员')")
    page.click("#logout-btn")
    assert page.evaluate("sessionStorage.getItem('linkcall.token')") is None


def test_duty_view_shows_the_dial_list_now_and_the_units_missing_a_roster(
    live_api: LiveService, browser_page: Any, tmp_path: Path
) -> None:
    from registry.duty import week_of
    from storage.base import utcnow

    week = week_of(utcnow(), live_api.app.state.service.settings.zone)  # type: ignore[attr-defined]
    with _admin(live_api) as http:
        for code, name, fallback in (("L01", "县供电公司", "2009"), ("L02", "县水务局", "2008")):
            body = {"code": code, "name": name, "kind": "linkage", "fallback_number": fallback}
            assert http.post("/api/v1/units", json=body).status_code == 201
        roster = {
            "leader": {"name": "李队长", "phone": "2004"},
            "staff": [{"name": "张值班", "phone": "2003"}],
        }
        resp = http.put(f"/api/v1/units/L01/rosters/{week}", json=roster)
        assert resp.status_code == 201, resp.text

    page = browser_page
    ui = _signed_in(live_api, page)
    page.click(".tabs button[data-view='duty']")
    page.wait_for_selector("#duty-unit option[value='L01']", state="attached")
    page.select_option("#duty-unit", "L01")
    page.click("#duty-form button[type='submit']")
    page.wait_for_selector("#duty-table:not([hidden])")
    rows = page.locator("#duty-table tbody tr")
    assert rows.count() == 3
    first = rows.nth(0).inner_text()
    assert "张值班" in first and "值班人员" in first and "2003" in first
    assert "带班领导" in rows.nth(1).inner_text() and "备用号码" in rows.nth(2).inner_text()
    assert "值班表第 1 版" in page.inner_text("#duty-meta")

    page.click("#week-this")
    page.wait_for_selector("#missing-list li")
    assert page.input_value("#missing-week") == week
    missing = page.inner_text("#missing-list")
    assert "L02" in missing and "县水务局" in missing and "L01" not in missing
    assert "1 个单位未报备" in page.inner_text("#missing-meta")
    page.screenshot(path=str(tmp_path / "console-duty.png"), full_page=True)
    assert ui.errors == [], ui.errors


def test_stats_view_shows_effective_callbacks_answers_and_the_satisfaction_rate(
    live_api: LiveService, browser_page: Any, tmp_path: Path
) -> None:
    from storage import surveys as survey_repo
    from storage.base import utcnow
    from storage.engine import session_scope
    from storage.models.surveys import SurveyStatus

    now = utcnow()
    factory = live_api.app.state.service.session_factory  # type: ignore[attr-defined]
    outcomes = ["satisfied", "satisfied", "satisfied", "unsatisfied", None]
    with session_scope(factory) as s:
        for i, answer in enumerate(outcomes):
            info = survey_repo.create_survey(
                s, number=f"1380000000{i}", first_attempt_at=now - timedelta(hours=1)
            )
            status = SurveyStatus.UNREACHED if answer is None else SurveyStatus.ANSWERED
            survey_repo.apply_outcome(
                s, info.id, status=status, now=now, reason="test", answer=answer
            )

    page = browser_page
    _signed_in(live_api, page, role="dispatcher")
    page.click(".tabs button[data-view='stats']")
    page.click("#stats-form button[type='submit']")
    page.wait_for_selector("#stats-msg:not([hidden])")
    assert "督导员" in page.inner_text("#stats-msg")  # dispatchers may not see statistics
    page.click("#logout-btn")

    ui = _signed_in(live_api, page, role="supervisor")
    page.click(".tabs button[data-view='stats']")
    page.click("#stats-form button[type='submit']")
    page.wait_for_selector("#stats-out:not([hidden])")
    assert page.inner_text("#st-effective") == "4"
    assert page.inner_text("#st-rate") == "75.0%"
    assert page.inner_text("#st-unrate") == "25.0%"
    assert page.inner_text("#st-noanswer") == "1"
    answers = page.inner_text("#st-answers")
    assert "满意" in answers and "基本满意" in answers and "不满意" in answers
    satisfied = page.locator("#st-answers tbody tr").nth(0).inner_text()
    assert "3" in satisfied and "75.0%" in satisfied
    page.screenshot(path=str(tmp_path / "console-stats.png"), full_page=True)
    assert ui.errors == [], ui.errors


def test_the_live_list_reconnects_with_last_event_id_and_catches_up(
    live_api: LiveService, browser_page: Any
) -> None:
    page = browser_page
    _signed_in(live_api, page)
    page.wait_for_selector("#live[data-state='on']")
    stream_requests: list[dict[str, str]] = []
    page.on(
        "request",
        lambda r: stream_requests.append(r.headers) if r.url.endswith("/api/v1/events") else None,
    )
    page.fill("#f-caller", "2001")
    page.fill("#f-dispatcher", "2002")  # the trunk peer never answers: the call stays dialing
    page.fill("#f-unit-number", "2003")
    page.click("#bridge-submit")
    page.wait_for_selector("#calls article.call[data-state='dialing']")
    assert page.locator("#calls article.call").count() == 1
    body = {
        "caller": {"number": "2005"},
        "dispatcher": {"number": "2006"},
        "unit": {"number": "2007"},
    }
    with httpx.Client(base_url=live_api.base_url, headers=live_api.auth("dispatcher")) as http:
        page.context.set_offline(True)  # the stream breaks
        page.wait_for_selector("#live[data-state='retry']")
        resp = http.post("/api/v1/bridges", json=body)  # another seat dials meanwhile
        assert resp.status_code == 202, resp.text
    page.context.set_offline(False)
    page.wait_for_selector("#live[data-state='on']", timeout=15_000)
    page.wait_for_function("() => document.querySelectorAll('#calls article.call').length === 2")
    assert "2007" in page.locator("#calls article.call").first.inner_text()
    assert len(stream_requests) == 1, "one reconnection"
    assert int(stream_requests[0]["last-event-id"]) > 0

    # ending a call that still rings a silent number ends it at once (the lines clear behind)
    page.locator("#calls article.call").first.locator("button.danger").click()
    page.wait_for_selector("#calls article.call[data-state='ended']")


@pytest.fixture
def low_disk_api(tmp_path: Path) -> Any:
    from tests.conftest import run_live_app, service_settings

    with run_live_app(service_settings(tmp_path, disk_min_free_mb=10**9)) as live:
        yield live


def test_the_console_says_when_the_disk_is_low_and_when_a_recording_failed_verification(
    low_disk_api: LiveService, browser_page: Any
) -> None:
    live = low_disk_api
    keeper = live.app.state.service.evidence  # type: ignore[attr-defined]
    from calls.evidence import VerifyResult

    keeper.last_verify = VerifyResult(checked=3, bad=[("rec42", "call42", "hash_mismatch unit")])
    ui = _signed_in(live, browser_page)
    banner = browser_page.locator("#ops-banner")
    banner.wait_for(state="visible")
    text = banner.inner_text()
    assert "磁盘空间不足" in text and "Calls still connect" in text
    assert "录音校验发现 1 条录音有问题" in text and "rec42" in text
    assert ui.errors == []
