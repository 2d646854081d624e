"""Browser tests of the console: Debian's chromium, headless, driven by Playwright.

Never `playwright install`: the browser is the system's /usr/bin/chromium. Each test gets a
fresh profile directory. `bridge_lab` (a service registered to the lab's Kamailio, with
baresip phones) is re-exported from tests/bridges.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.bridges.conftest import bridge_lab  # noqa: F401  (fixture re-exported)
from tests.conftest import LiveService, run_live_app, service_settings

CHROMIUM = os.environ.get("LINKCALL_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture
def live_api(tmp_path: Path) -> Iterator[LiveService]:
    """The shared `live_api`, with the lab's extensions (2001 …) dialable: the console tests
    type them into the forms. The service's trunk mode allows no extensions unless configured
    (issue 13), so the pattern is set here as an operator would."""
    settings = service_settings(tmp_path, extensions_pattern=r"^[1-9][0-9]{2,5}$")
    with run_live_app(settings) as live:
        yield live


def _require_browser() -> None:
    reason = ""
    try:
        import playwright  # noqa: F401
    except ImportError:
        reason = "playwright is not installed (pip install playwright; never `playwright install`)"
    if not reason and shutil.which(CHROMIUM) is None:
        reason = f"{CHROMIUM} is not installed (apt-get install chromium)"
    if reason:
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)


class Console:
    """One browser page on the console, with what the page logged."""

    def __init__(self, page: Any, base_url: str) -> None:
        self.page = page
        self.base_url = base_url
        self.errors: list[str] = []
        self.requests: list[str] = []
        page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: self.errors.append(str(e)))
        page.on("request", lambda r: self.requests.append(r.url))

    def open(self) -> None:
        self.page.goto(self.base_url + "/console")

    def login(self, token: str) -> None:
        self.page.fill("#token", token)
        self.page.click("#login-btn")


@pytest.fixture
def browser_page(tmp_path: Path) -> Iterator[Any]:
    """A fresh headless chromium page (own profile dir); closed at teardown."""
    _require_browser()
    from playwright.sync_api import sync_playwright

    profile = tmp_path / "chromium-profile"
    profile.mkdir()
    with sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            str(profile),
            executable_path=CHROMIUM,
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": 1280, "height": 900},
            locale="zh-CN",
            timezone_id="Asia/Shanghai",
        )
        try:
            context.set_default_timeout(15_000)
            page = context.pages[0] if context.pages else context.new_page()
            yield page
        finally:
            context.close()
