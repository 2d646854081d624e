"""管理 in a real browser against a real service: an admin adds a unit (a refused fallback shown
under its field), edits it, deactivates it (gone from the bridge form, history kept), creates a
token that is shown once and works, and revokes it; other roles never see the view."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import LiveService
from tests.console.conftest import Console

pytestmark = [pytest.mark.integration]


def test_an_admin_manages_units_and_tokens(
    live_api: LiveService, browser_page: Any, tmp_path: Path
) -> None:
    page = browser_page
    page.on("dialog", lambda d: d.accept())  # the confirm() before deactivating / revoking
    ui = Console(page, live_api.base_url)
    ui.open()
    ui.login(live_api.tokens["admin"])
    page.wait_for_selector("#whoami:has-text('管理员')")
    page.click(".tabs button[data-view='admin']")
    page.wait_for_selector("#view-admin:not([hidden])")

    page.fill("#uf-code", "L46")
    page.fill("#uf-name", "县城管局")
    page.fill("#uf-fallback", "110")
    page.click("#uf-save")
    page.wait_for_selector(".field[data-field='fallback_number'].invalid .field-error div")
    assert "HTTP 422" in page.inner_text("#uf-msg")
    page.fill("#uf-fallback", "0833-4210046")
    page.click("#uf-save")
    page.wait_for_selector("#units-table tr[data-unit='L46']")
    assert "+868334210046" in page.inner_text("#units-table tr[data-unit='L46']")

    page.click("#units-table tr[data-unit='L46'] button:has-text('编辑')")
    assert page.is_disabled("#uf-code")
    page.fill("#uf-name", "县城市管理局")
    page.click("#uf-save")
    page.wait_for_selector("#units-table tr[data-unit='L46']:has-text('县城市管理局')")
    page.wait_for_selector("#f-unit option[value='L46']", state="attached")  # offered for bridges

    page.click("#units-table tr[data-unit='L46'] button:has-text('停用')")
    page.wait_for_selector("#units-table tr[data-unit='L46'][data-active='false']")
    assert "已停用" in page.inner_text("#units-table tr[data-unit='L46']")
    page.wait_for_selector("#f-unit option[value='L46']", state="detached")
    with httpx.Client(base_url=live_api.base_url, headers=live_api.auth("admin")) as http:
        unit = http.get("/api/v1/units/L46").json()
        assert unit == {"code": "L46", "name": "县城市管理局", "kind": "linkage",
                        "fallback_number": "+868334210046", "active": False}  # fmt: skip

    # a token: shown once, works, listed without its secret, revoked
    page.fill("#tf-name", "调度席 2002")
    page.select_option("#tf-role", "dispatcher")
    page.click("#token-form button[type='submit']")
    page.wait_for_selector("#tf-secret:not([hidden])")
    secret = page.inner_text("#tf-secret-value").strip()
    assert secret.startswith("lc_")
    with httpx.Client(base_url=live_api.base_url) as http:
        me = http.get("/api/v1/me", headers={"Authorization": f"Bearer {secret}"})
        assert me.status_code == 200 and me.json()["role"] == "dispatcher"
    row = page.locator("#tokens-table tr", has_text="调度席 2002")
    row.wait_for()
    assert secret not in page.inner_text("#tokens-table")
    assert "有效 至" in row.inner_text()  # a new token expires (LINKCALL_TOKEN_TTL_DAYS, issue 13)
    page.screenshot(path=str(tmp_path / "admin.png"), full_page=True)
    row.locator("button:has-text('吊销')").click()
    page.wait_for_selector("#tokens-table tr[data-revoked='true']:has-text('调度席 2002')")
    with httpx.Client(base_url=live_api.base_url) as http:
        me = http.get("/api/v1/me", headers={"Authorization": f"Bearer {secret}"})
        assert me.status_code == 401

    page.select_option("#tf-role", "unit")  # a unit token needs its unit
    page.fill("#tf-name", "某单位")
    page.click("#token-form button[type='submit']")
    page.wait_for_selector(".field[data-field='unit_code'].invalid")
    assert all("422" in e or "Failed to load resource" in e for e in ui.errors), ui.errors

    page.click("#logout-btn")
    ui.login(live_api.tokens["supervisor"])
    page.wait_for_selector("#whoami:has-text('督导员')")
    assert page.locator(".tabs button[data-view='admin']:visible").count() == 0
