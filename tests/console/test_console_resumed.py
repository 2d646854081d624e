"""A call carried on after a crash, in a real browser: its card says it was carried on after a
restart and how long the parties heard nothing, and each recording segment has its own play
button that plays that segment (issue 18)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from storage.engine import session_scope
from storage.models.call_records import Call, CallKind, CallState, Leg, Recording, RecordingState
from tests.conftest import LiveService
from tests.console.conftest import Console

pytestmark = [pytest.mark.integration]


def test_a_resumed_call_shows_the_gap_and_both_segments(
    live_api: LiveService, browser_page: Any
) -> None:
    factory = live_api.app.state.service.session_factory  # type: ignore[attr-defined]
    t0 = datetime.now(UTC) - timedelta(minutes=5)
    with session_scope(factory) as s:
        call = Call(kind=CallKind.BRIDGE, state=CallState.ENDED, created_at=t0,
                    connected_at=t0 + timedelta(seconds=8), interrupted=True,
                    gap_started_at=t0 + timedelta(seconds=40),
                    resumed_at=t0 + timedelta(seconds=43, milliseconds=400),
                    ended_at=t0 + timedelta(seconds=90), end_reason="ended_by_request")  # fmt: skip
        call.legs += [Leg(role=r, number=n, state="left")
                      for r, n in (("caller", "13812345678"), ("dispatcher", "2002"),
                                   ("unit", "2003"))]  # fmt: skip
        s.add(call)
        s.flush()
        s.add_all([
            Recording(id=f"{call.id}", call_id=call.id, segment=1, directory="x/1",
                      state=RecordingState.INTERRUPTED),
            Recording(id=f"{call.id}-2", call_id=call.id, segment=2, directory="x/2",
                      state=RecordingState.FINALISED),
        ])  # fmt: skip
        call_id = call.id
    page = browser_page
    ui = Console(page, live_api.base_url)
    ui.open()
    ui.login(live_api.tokens["dispatcher"])
    page.wait_for_selector("#whoami:has-text('调度员')")
    page.click(".tabs button[data-view='calls']")
    # locators, not element handles: the list may be drawn again (a refresh, an event) between
    # two steps, and a handle to the old card is then detached from the page
    card = page.locator(f"#calls article.call[data-call='{call_id}']")
    note = card.locator("[data-resumed]")
    note.wait_for()
    text = note.inner_text()
    assert "服务重启后已恢复通话" in text and "3.4" in text
    buttons = card.locator("button[data-segment]")
    assert buttons.all_inner_texts() == ["播放录音（第1段）", "播放录音（第2段）"]
    with page.expect_request(lambda r: f"/api/v1/recordings/{call_id}-2/audio" in r.url):
        buttons.nth(1).click()
