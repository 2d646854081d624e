"""Issue 13, finding 12: /docs renders in a real browser with nothing fetched from another
host (FastAPI's page pulled Swagger UI from a CDN)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from tests.conftest import LiveService
from tests.console.conftest import Console


def test_swagger_ui_renders_from_local_assets_only(
    live_api: LiveService, browser_page: Any
) -> None:
    ui = Console(browser_page, live_api.base_url)
    browser_page.goto(live_api.base_url + "/docs")
    browser_page.wait_for_selector(".opblock-summary-path", timeout=20_000)
    assert browser_page.locator(".opblock").count() > 20  # every operation is listed
    origin = urlsplit(live_api.base_url).netloc
    foreign = [u for u in ui.requests if urlsplit(u).netloc not in (origin, "")]
    assert foreign == [], foreign
    assert any(u.endswith("/docs/assets/swagger-ui-bundle.js") for u in ui.requests)
    assert not ui.errors, ui.errors
