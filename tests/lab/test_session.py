"""LabSession (scripts/lab.py, linkcall demo): starts Kamailio and phones, stops them all."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lab.session import LabSession

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_session_starts_registered_phones_and_stops_everything(tmp_path: Path) -> None:
    with LabSession(tmp_path, phones=[("2001", 400.0), ("2002", 1000.0)]) as lab:
        assert lab.kamailio.registered("2001") and lab.kamailio.registered("2002")
        text = lab.describe()
        assert f"sip:127.0.0.1:{lab.kamailio.udp_port}" in text
        assert "2001/pw2001" in text and "1000/pw1000" in text
        pids = [lab.kamailio.pid, *(p.pid for p in lab.phones.values())]
    assert all(pid is not None and _gone(pid) for pid in pids)


def test_lab_script_runs_until_interrupted(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [
            sys.executable,
            str(REPO / "scripts" / "lab.py"),
            "--phones",
            "2",
            "--workdir",
            str(tmp_path / "run"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert proc.stdout is not None
        lines = []
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            lines.append(line)
            if "Ctrl-C" in line or not line:
                break
        out = "".join(lines)
        assert "Phone 2001" in out and "Phone 2002" in out, out
        proc.send_signal(signal.SIGINT)
        rest, _ = proc.communicate(timeout=20)
        assert "lab stopped" in rest
        assert proc.returncode == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    pidfile = tmp_path / "run" / "kamailio" / "kamailio.pid"
    if pidfile.exists():
        assert _gone(int(pidfile.read_text().strip()))
