"""The README's first command: `linkcall demo` runs the whole product on this machine."""

from __future__ import annotations

import os
import queue
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _run_demo_checking_the_console(env: dict[str, str]) -> tuple[int, str]:
    """Run `linkcall demo --seconds 30`; while it keeps the service up, open the console URL it
    printed and sign in with each printed token. The demo's exit code and its output."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "api", "demo", "--seconds", "30"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    lines: queue.Queue[str | None] = queue.Queue()

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    seen: list[str] = []
    deadline = time.monotonic() + 240
    checked = False
    try:
        while time.monotonic() < deadline:
            try:
                line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                break
            if line is None:
                break
            seen.append(line)
            if "keeps running" in line and not checked:
                _check_console("".join(seen))
                checked = True
        assert checked, "".join(seen)[-3000:]
        return proc.wait(60), "".join(seen)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


def _check_console(text: str) -> None:
    url = re.search(r"console: (http://127\.0\.0\.1:\d+/console)", text)
    assert url, text
    page = httpx.get(url[1], timeout=10)
    assert page.status_code == 200 and "指挥中心控制台" in page.text
    base = url[1].removesuffix("/console")
    tokens = dict(re.findall(r"^\s+\S+\s+(admin|dispatcher|supervisor|unit L01)\s+(lc_\S+)$",
                             text, re.M))  # fmt: skip
    assert set(tokens) == {"admin", "dispatcher", "supervisor", "unit L01"}, text
    for role, token in tokens.items():
        me = httpx.get(f"{base}/api/v1/me", headers={"Authorization": f"Bearer {token}"})
        assert me.status_code == 200, (role, me.text)
        assert me.json()["role"] == role.split()[0]
        assert me.json()["unit_code"] == ("L01" if role == "unit L01" else None)


def test_demo_places_a_recorded_three_way_call_and_stops_everything(tmp_path: Path) -> None:
    env = {**os.environ, "LINKCALL_DATA_DIR": str(tmp_path / "var")}
    env.pop("LINKCALL_DATABASE_URL", None)
    code, text = _run_demo_checking_the_console(env)
    assert code == 0, text[-3000:]
    assert "registered 1000: yes" in text
    assert "demo done" in text
    sha = re.search(r"recording \w+: [\d.]+ s, sha256 ([0-9a-f]{64})", text)
    assert sha, text
    # each party track holds its own tone loudly, the others near silence
    for role, hz in (("caller", 400), ("dispatcher", 1000), ("unit", 1800)):
        line = next(ln for ln in text.splitlines() if ln.strip().startswith(role) and ".wav" in ln)
        levels = {int(k): float(v) for k, v in re.findall(r"(\d+)Hz=(-?\d+)dB", line)}
        assert levels[hz] > -30, line
        assert all(v < -50 for f, v in levels.items() if f != hz), line
    # nothing left running from the demo's working directory
    ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    assert str(tmp_path) not in ps


def test_the_demo_rosters_the_week_the_service_dials_from_in_the_centers_zone() -> None:
    """The demo saves its roster (unit L01 on the lab phone 2003) for the week the service dials
    from. That week is the center's (Asia/Shanghai by default): on a Sunday evening in UTC it is
    already next Monday there. The machine's own week (as the demo once used) dialled the
    seeded roster's made-up number and failed the demo call every Sunday 16:00-24:00 UTC."""
    from datetime import UTC, datetime
    from zoneinfo import ZoneInfo

    from lab.demo import demo_week

    shanghai = ZoneInfo("Asia/Shanghai")
    sunday_evening_utc = datetime(2026, 12, 6, 16, 30, tzinfo=UTC)
    assert sunday_evening_utc.isocalendar().week == 49  # the machine's week (UTC)
    assert demo_week(sunday_evening_utc, shanghai) == "2026-W50"
    assert demo_week(datetime(2026, 12, 6, 15, 30, tzinfo=UTC), shanghai) == "2026-W49"
