"""满意度趋势 in a real browser against a real service: the page draws the monthly satisfaction
rate of seeded months as SVG with the right figures, shows the breakdowns by unit, type and
dispatcher, and its XLSX export opens with openpyxl holding the API's figures."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import openpyxl
import pytest

from tests.conftest import LiveService
from tests.console.conftest import Console
from tests.surveys.seed_months import PERIOD, seed_months

pytestmark = [pytest.mark.integration]


def test_the_trend_chart_shows_seeded_months_and_the_xlsx_export_matches_the_api(
    live_api: LiveService, browser_page: Any, tmp_path: Path
) -> None:
    seed_months(live_api.app.state.service.session_factory)  # type: ignore[attr-defined]
    page = browser_page
    ui = Console(page, live_api.base_url)
    ui.open()
    ui.login(live_api.tokens["dispatcher"])
    page.wait_for_selector("#whoami:has-text('调度员')")
    assert page.locator(".tabs button[data-view='trend']:visible").count() == 0
    page.click("#logout-btn")
    ui.login(live_api.tokens["supervisor"])
    page.wait_for_selector("#whoami:has-text('督导员')")
    page.click(".tabs button[data-view='trend']")
    page.fill("#tr-from", "2026-08")
    page.fill("#tr-to", "2026-11")
    page.click("#trend-form button[type='submit']")
    page.wait_for_selector("#tr-out:not([hidden]) svg.trend")

    months = page.eval_on_selector_all(
        "svg.trend g.month",
        "gs => gs.map(g => [g.dataset.month, g.dataset.pct, g.dataset.effective, g.textContent])",
    )
    assert [(m, p, n) for m, p, n, _ in months] == [
        ("2026-08", "", "0"),
        ("2026-09", "75.0", "4"),
        ("2026-10", "50.0", "2"),
        ("2026-11", "100.0", "2"),
    ]
    labels = [text for *_, text in months]
    assert "无" in labels[0] and "75.0%" in labels[1] and "100.0%" in labels[3]
    heights = page.eval_on_selector_all(
        "svg.trend g.month rect", "rs => rs.map(r => Number(r.getAttribute('height')))"
    )
    # September 75 %, October 50 %, November 100 % (August has no bar)
    assert heights[1] < heights[0] < heights[2] and heights[0] == heights[1] * 1.5
    assert "返工" in page.inner_text("#tr-months thead")
    sept = page.inner_text("#tr-months tr[data-month='2026-09']")
    assert "75.0%" in sept and "25.0%" in sept
    assert "83.3%" in page.inner_text("#tr-dispatcher tr[data-key='张调度']")
    l01 = page.inner_text("#tr-unit tr[data-key='L01']")
    assert "县供电公司" in l01 and "83.3%" in l01  # 5 of 6 effective
    assert "75.0%" in page.inner_text("#tr-type tr[data-key='traffic']")
    page.screenshot(path=str(tmp_path / "trend.png"), full_page=True)

    with page.expect_download() as dl:
        page.click(".export[data-group='unit'] button[data-format='xlsx']")
    path = tmp_path / "by-unit.xlsx"
    dl.value.save_as(path)
    sheet = openpyxl.load_workbook(path).active
    rows = [list(r) for r in sheet.iter_rows(values_only=True)]
    head = rows[0]
    with httpx.Client(base_url=live_api.base_url, headers=live_api.auth("supervisor")) as http:
        params = {"from": PERIOD[0].isoformat(), "to": PERIOD[1].isoformat()}
        api = http.get("/api/v1/surveys/stats", params=params).json()
    got = {r[0]: dict(zip(head, r, strict=True)) for r in rows[1:]}
    assert got["合计 total"]["有效回访 effective"] == api["total"]["effective"] == 8
    for t in api["by_unit"]:
        row = got[t["unit_code"]]
        assert row["有效回访 effective"] == t["effective"]
        assert row["满意率% satisfaction_pct"] == t["satisfaction_pct"]
        assert row["未接通 no_answer"] == t["no_answer"]
        assert row["返工 rework"] == t["rework"]
    assert ui.errors == [], ui.errors
