"""审计 in a real browser against a real service: the recordings browser plays a single track
from a blob URL and downloads the evidence package, which `sha256sum -c` verifies; the audit
log shows those accesses, filtered by action, actor and recording."""

from __future__ import annotations

import subprocess
import zipfile
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import LiveService
from tests.console.conftest import Console
from tests.recordings.seed_call import seed_recorded_call

pytestmark = [pytest.mark.integration]


def test_recordings_browser_evidence_package_and_audit_log(
    live_api: LiveService, browser_page: Any, tmp_path: Path
) -> None:
    service = live_api.app.state.service  # type: ignore[attr-defined]
    call_id, rec_id = seed_recorded_call(service.session_factory, service.settings.recordings_dir)
    page = browser_page
    ui = Console(page, live_api.base_url)
    ui.open()
    ui.login(live_api.tokens["supervisor"])
    page.wait_for_selector("#whoami:has-text('督导员')")
    page.click(".tabs button[data-view='audit']")
    page.click("#rec-form button[type='submit']")
    row = f"#rec-table tr[data-recording='{rec_id}']"
    page.wait_for_selector(row)
    text = page.inner_text(row)
    assert "三方通话" in text and "JQ-1" in text and "已封存" in text and "2.0 秒" in text
    assert "正常" in text

    page.click(f"{row} button[data-track='caller']")
    page.wait_for_selector("#rec-player:not([hidden])[data-track='caller']")
    assert page.get_attribute("#rec-audio", "src").startswith("blob:")
    duration = page.evaluate(
        """() => new Promise((ok) => {
            const a = document.querySelector('#rec-audio');
            if (a.readyState >= 1) return ok(a.duration);
            a.addEventListener('loadedmetadata', () => ok(a.duration), {once: true});
            a.addEventListener('error', () => ok(-1), {once: true});
        })"""
    )
    assert 1.5 < duration < 2.5, duration

    with page.expect_download() as dl:
        page.click(f"{row} button:has-text('下载证据包')")
    package = tmp_path / "evidence.zip"
    dl.value.save_as(package)
    with zipfile.ZipFile(package) as z:
        z.extractall(tmp_path / "unpacked")
    folder = tmp_path / "unpacked" / rec_id
    check = subprocess.run(["sha256sum", "-c", "SHA256SUMS"], cwd=folder, capture_output=True,
                           text=True, timeout=30)  # fmt: skip
    assert check.returncode == 0, check.stdout + check.stderr
    assert "tracks/caller.wav: OK" in check.stdout and "access-audit.json: OK" in check.stdout
    page.wait_for_selector("#rec-msg.ok:has-text('sha256sum')")

    # 法律保全: a reason asked for, the row marked, the API agrees
    page.once("dialog", lambda d: d.accept("案件 2026-001 证据保全"))
    page.click(f"{row} button[data-hold='false']")
    page.wait_for_selector(f"{row} .badge.hold")
    held = live_api.app.state.service  # type: ignore[attr-defined]
    with httpx.Client(base_url=live_api.base_url, headers=live_api.auth("supervisor")) as http:
        meta = http.get(f"/api/v1/recordings/{rec_id}").json()
        assert meta["legal_hold"] is True and meta["hold_reason"] == "案件 2026-001 证据保全"
    assert held

    # the audit log: this recording's accesses, newest first
    page.click(f"{row} button:has-text('访问记录')")
    page.wait_for_selector("#au-table:not([hidden]) tbody tr")
    actions = page.eval_on_selector_all("#au-table tbody tr", "rs => rs.map(r => r.dataset.action)")
    assert actions == ["recording.metadata", "recording.hold", "recording.package",
                       "recording.audio"]  # fmt: skip
    second = page.inner_text("#au-table tbody tr:nth-child(2)")
    assert "设置法律保全" in second and "supervisor" in second
    assert "下载证据包" in page.inner_text("#au-table tbody tr:nth-child(3)")
    page.fill("#au-type", "")
    page.fill("#au-id", "")
    page.fill("#au-action", "recording.")
    page.fill("#au-actor", "supervisor")
    page.click("#audit-form button[type='submit']")
    page.wait_for_function(
        "() => document.querySelectorAll('#au-table tbody tr').length === 6"
    )  # list, audio, package, hold, list again (after the hold), metadata
    page.fill("#au-actor", "dispatcher")
    page.click("#audit-form button[type='submit']")
    page.wait_for_selector("#au-msg:has-text('没有符合条件')")
    page.screenshot(path=str(tmp_path / "audit.png"), full_page=True)
    assert call_id
    assert ui.errors == [], ui.errors
