"""After a crash, the restarted service waits for the old media workers (they seal what they
hold, then exit) before it recovers recordings or opens RTP ports: the workers hold a lock
shared while they live (remote.wait_for_previous)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from calls.media_workers.remote import wait_for_previous

HOLDER = """
import sys, time
from calls.media_workers.worker import _hold_lock
_hold_lock(sys.argv[1])
print("held", flush=True)
time.sleep(float(sys.argv[2]))
"""


def _holder(lock: Path, seconds: float) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(lock), str(seconds)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    return proc


async def test_the_new_service_waits_until_the_old_workers_are_gone(tmp_path: Path) -> None:
    lock = tmp_path / "media-workers.lock"
    assert await wait_for_previous(lock, 1.0)  # nobody holds it: at once
    old = [_holder(lock, 1.0), _holder(lock, 1.5)]  # two workers still sealing
    try:
        t0 = time.monotonic()
        assert await wait_for_previous(lock, 10.0)
        waited = time.monotonic() - t0
        assert 1.0 <= waited < 5.0, waited
        assert all(p.poll() is not None for p in old)  # both had exited
    finally:
        for p in old:
            p.kill()
            p.wait()


async def test_a_worker_that_never_exits_does_not_hold_the_start_for_ever(tmp_path: Path) -> None:
    lock = tmp_path / "media-workers.lock"
    stuck = _holder(lock, 60.0)
    try:
        t0 = time.monotonic()
        assert not await wait_for_previous(lock, 0.5)
        assert time.monotonic() - t0 < 2.0
    finally:
        stuck.kill()
        stuck.wait()
