"""通话记录 in a real browser against a real service: a call is found by the last four digits of
the caller's number, by unit and date, and long results page with 加载更多 (the API's cursor)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from storage.engine import session_scope
from storage.models.call_records import Call, CallKind, CallState, Leg
from tests.conftest import LiveService
from tests.console.conftest import Console

pytestmark = [pytest.mark.integration]

T0 = datetime(2026, 11, 20, 2, 0, tzinfo=UTC)  # 10:00 Beijing time, 20 Nov 2026


def _seed(live: LiveService) -> dict[str, str]:
    factory = live.app.state.service.session_factory  # type: ignore[attr-defined]
    with httpx.Client(base_url=live.base_url, headers=live.auth("admin"), timeout=10) as http:
        body = {"code": "L01", "name": "县供电公司", "kind": "linkage", "fallback_number": "2009"}
        assert http.post("/api/v1/units", json=body).status_code == 201
    ids: dict[str, str] = {}
    with session_scope(factory) as s:
        for i in range(52):  # filler: other callers, the day before
            call = Call(kind=CallKind.INBOUND, state=CallState.ENDED,
                        created_at=T0 - timedelta(days=1, minutes=i))  # fmt: skip
            call.legs.append(Leg(role="caller", number=f"+86139000{i:05d}"))
            s.add(call)
        wanted = Call(kind=CallKind.BRIDGE, state=CallState.ENDED, unit_code="L01",
                      incident_id="JQ-20261120-7", created_at=T0,
                      end_reason="ended_by_request")  # fmt: skip
        wanted.legs += [Leg(role="caller", number="+8613812345678"),
                        Leg(role="dispatcher", number="2002"),
                        Leg(role="unit", number="+868334210001")]  # fmt: skip
        other = Call(kind=CallKind.CALLBACK, state=CallState.FAILED,
                     created_at=T0 + timedelta(hours=1))  # fmt: skip
        other.legs.append(Leg(role="callee", number="+8613700005678"))
        s.add_all([wanted, other])
        s.flush()
        ids["wanted"], ids["other"] = wanted.id, other.id
    return ids


def test_a_call_is_found_by_the_last_four_digits_and_long_results_page(
    live_api: LiveService, browser_page: Any, tmp_path: Path
) -> None:
    ids = _seed(live_api)
    page = browser_page
    ui = Console(page, live_api.base_url)
    ui.open()
    ui.login(live_api.tokens["dispatcher"])
    page.wait_for_selector("#whoami:has-text('调度员')")
    page.click(".tabs button[data-view='history']")
    page.wait_for_selector("#h-unit option[value='L01']", state="attached")

    page.fill("#h-number", "5678")
    page.press("#h-number", "Enter")  # the keyboard submits
    page.wait_for_selector("#h-table:not([hidden]) tbody tr")
    rows = page.locator("#h-table tbody tr")
    assert rows.count() == 2
    assert rows.nth(0).get_attribute("data-call") == ids["other"]  # newest first
    found = rows.nth(1)
    assert found.get_attribute("data-call") == ids["wanted"]
    text = found.inner_text()
    assert "三方通话" in text and "已结束" in text and "县供电公司" in text
    assert "+8613812345678" in text and "JQ-20261120-7" in text and "调度员结束通话" in text
    assert "找到 2 条通话" in page.inner_text("#h-meta")
    page.screenshot(path=str(tmp_path / "history-digits.png"), full_page=True)

    page.select_option("#h-unit", "L01")
    page.fill("#h-from", "2026-11-20")
    page.fill("#h-to", "2026-11-20")
    page.click("#h-search")
    page.wait_for_function("() => document.querySelectorAll('#h-table tbody tr').length === 1")
    assert page.locator("#h-table tbody tr").get_attribute("data-call") == ids["wanted"]

    page.fill("#h-number", "12")  # too short: the API's 422 under the field
    page.click("#h-search")
    page.wait_for_selector("#history-form .field.invalid .field-error div")
    assert "last 3 to 15 digits" in page.inner_text("#history-form .field.invalid")

    page.click("#history-form button[type='reset']")
    page.click("#h-search")
    page.wait_for_selector("#h-more:not([hidden])")
    assert page.locator("#h-table tbody tr").count() == 50
    page.click("#h-more")
    page.wait_for_selector("#h-more", state="hidden")
    assert page.locator("#h-table tbody tr").count() == 54
    shown = page.eval_on_selector_all("#h-table tbody tr", "rs => rs.map(r => r.dataset.call)")
    assert len(set(shown)) == 54
    page.screenshot(path=str(tmp_path / "history-all.png"), full_page=True)
    assert all("422" in e or "Failed to load resource" in e for e in ui.errors), ui.errors
