"""The README's first command: `linkcall demo` runs the whole product on this machine."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_demo_places_a_recorded_three_way_call_and_stops_everything(tmp_path: Path) -> None:
    env = {**os.environ, "LINKCALL_DATA_DIR": str(tmp_path / "var")}
    env.pop("LINKCALL_DATABASE_URL", None)
    out = subprocess.run(
        [sys.executable, "-m", "api", "demo"], env=env, capture_output=True, text=True, timeout=240
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    text = out.stdout
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
