"""The evidence keeper: a service component that runs the daily retention purge and hash
verification on the one scheduler, and watches the free disk space under the recordings.

Low disk never refuses a call: /readyz degrades, the metric and the console say so, and the
low-disk period itself is recorded (an audit entry when it begins and when it ends, with the
free space), so a gap in a recording made meanwhile is explained. The writers record any audio
they could not store (`lost_s`, `errors` in the recording's manifest).
"""

from __future__ import annotations

import asyncio
import logging
import shutil
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from api.scheduler import Scheduler
from calls.component import Health
from calls.evidence import PurgeResult, VerifyResult, purge_expired, verify_recordings
from calls.hooks import Publish
from calls.stats import CallStats
from storage import audit
from storage.base import utcnow
from storage.engine import session_scope

log = logging.getLogger(__name__)

DAILY_JOB_ID = "evidence.daily"
DISK_JOB_ID = "evidence.disk"
DISK_CHECK_S = 30.0
MB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class DiskState:
    path: str
    free_bytes: int
    total_bytes: int
    min_free_bytes: int
    checked_at: datetime

    @property
    def low(self) -> bool:
        return self.min_free_bytes > 0 and self.free_bytes < self.min_free_bytes


class EvidenceKeeper:
    """Retention, verification and disk watch (a Component)."""

    name = "evidence"

    def __init__(
        self,
        factory: sessionmaker[Session],
        recordings_root: Path,
        *,
        retention_days: int,
        min_free_mb: int,
        stats: CallStats,
        publish: Publish,
        daily_at: tuple[int, int] = (3, 30),
    ) -> None:
        self.factory = factory
        self.root = recordings_root
        self.retention_days = retention_days
        self.min_free_bytes = min_free_mb * MB
        self.stats = stats
        self.publish = publish
        self.daily_at = daily_at
        self.disk: DiskState | None = None
        self.low_since: datetime | None = None
        self.last_verify: VerifyResult | None = None
        self.last_purge: PurgeResult | None = None
        self.last_daily_error: str | None = None

    def register(self, scheduler: Scheduler) -> None:
        hour, minute = self.daily_at
        scheduler.add_daily_job(
            self.run_daily,
            hour=hour,
            minute=minute,
            job_id=DAILY_JOB_ID,
            name="retention purge and recording hash verification",
        )
        scheduler.add_interval_job(
            self.check_disk, seconds=DISK_CHECK_S, job_id=DISK_JOB_ID, name="free disk watch"
        )

    async def start(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        await self.check_disk()

    async def stop(self) -> None:
        return None

    def health(self) -> Health:
        disk = self.disk
        if disk is None:
            return Health(True, "disk not checked yet")
        free_mb = disk.free_bytes // MB
        if disk.low:
            return Health(
                False,
                f"free disk {free_mb} MB under {self.min_free_bytes // MB} MB at {disk.path}: "
                "calls still connect, recordings may have gaps",
            )
        return Health(True, f"free disk {free_mb} MB")

    # -- the daily job --
    async def run_daily(self) -> None:
        """Purge what is past retention, then verify every finalised recording (in a worker
        thread: hashing reads every file)."""
        try:
            self.last_purge = await asyncio.to_thread(self.purge)
            result = await asyncio.to_thread(self.verify)
            self.last_daily_error = None
        except Exception as exc:
            self.last_daily_error = f"{type(exc).__name__}: {exc}"
            log.exception("daily evidence job failed")
            return
        if result.bad:  # published on the loop: the event bus is not thread-safe
            self.publish(
                "recording.problems",
                {"checked": result.checked, "bad": [b[0] for b in result.bad]},
            )

    def purge(self, now: datetime | None = None) -> PurgeResult:
        return purge_expired(self.factory, self.root, self.retention_days, now=now)

    def verify(self, now: datetime | None = None) -> VerifyResult:
        result = verify_recordings(self.factory, self.root, now=now)
        self.stats.recording_problems.update(result.problems)
        self.last_verify = result
        return result

    # -- disk --
    def measure_disk(self) -> DiskState:
        usage = shutil.disk_usage(self.root)
        return DiskState(str(self.root), usage.free, usage.total, self.min_free_bytes, utcnow())

    async def check_disk(self) -> None:
        try:
            state = self.measure_disk()
        except OSError as exc:
            log.error("free disk check failed: %s", exc)
            return
        was_low = self.disk is not None and self.disk.low
        self.disk = state
        if state.low and not was_low:
            self.low_since = state.checked_at
            self.stats.recording_problems["disk_low"] += 1
            log.error(
                "free disk %d MB under LINKCALL_DISK_MIN_FREE_MB (%d MB) at %s: calls still "
                "connect, recordings may have gaps",
                state.free_bytes // MB,
                self.min_free_bytes // MB,
                state.path,
            )
            await self._note("disk.low", self._disk_detail(state))
        elif was_low and not state.low:
            detail = {**self._disk_detail(state), "low_since": _iso(self.low_since)}
            self.low_since = None
            log.warning("free disk back to %d MB", state.free_bytes // MB)
            await self._note("disk.ok", detail)

    def _disk_detail(self, state: DiskState) -> dict[str, Any]:
        return {
            "free_mb": state.free_bytes // MB,
            "min_free_mb": state.min_free_bytes // MB,
            "at": state.checked_at.isoformat(),
        }

    async def _note(self, action: str, detail: dict[str, Any]) -> None:
        """Publish (on the loop) and audit (in a worker thread) a change of the disk's state."""
        self.publish(action, detail)
        try:
            await asyncio.to_thread(self._audit, action, detail)
        except Exception:
            log.exception("could not record %s", action)

    def _audit(self, action: str, detail: dict[str, Any]) -> None:
        with session_scope(self.factory) as session:
            audit.record(session, None, action, "disk", "recordings", detail=detail)

    def status(self) -> dict[str, Any]:
        """What the console and GET /api/v1/ops/status show."""
        disk = self.disk
        verify = self.last_verify
        return {
            "disk": None
            if disk is None
            else {
                "path": disk.path,
                "free_mb": disk.free_bytes // MB,
                "total_mb": disk.total_bytes // MB,
                "min_free_mb": disk.min_free_bytes // MB,
                "low": disk.low,
                "low_since": _iso(self.low_since),
                "checked_at": disk.checked_at.isoformat(),
            },
            "verification": None
            if verify is None
            else {
                "finished_at": _iso(verify.finished_at),
                "checked": verify.checked,
                "bad": [{"recording_id": r, "call_id": c, "problems": t} for r, c, t in verify.bad],
            },
            "retention_days": self.retention_days,
            "daily_error": self.last_daily_error,
        }


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None
