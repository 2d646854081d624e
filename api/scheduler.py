"""The scheduler component: the service's one APScheduler 3, on its event loop, in the county's
zone. It runs the weekly roster reminder, on-demand duty checks, the survey dispatcher's
interval job (`add_interval_job`), and the daily evidence job (`add_daily_job`: retention purge
and hash verification, api/evidence.py).

Jobs are registered with explicit ids, `replace_existing=True` and a misfire grace time, and
point at module-level functions with serialisable arguments (see api/jobs/). The clock is
injectable so tests can ask "when does the reminder fire after T" and run a job "at" T.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from apscheduler.job import Job  # type: ignore[import-untyped]
from apscheduler.schedulers.asyncio import AsyncIOScheduler  # type: ignore[import-untyped]
from apscheduler.triggers.cron import CronTrigger  # type: ignore[import-untyped]
from apscheduler.triggers.date import DateTrigger  # type: ignore[import-untyped]
from apscheduler.triggers.interval import IntervalTrigger  # type: ignore[import-untyped]

from calls.component import Health
from calls.duty_check_job import duty_check_job
from registry.reminder import run_weekly_reminder
from storage.base import utcnow

log = logging.getLogger(__name__)

REMINDER_JOB_ID = "registry.weekly_reminder"
DUTY_CHECK_PREFIX = "registry.duty_check:"


@dataclass(frozen=True, slots=True)
class ReminderSchedule:
    """When the weekly roster reminder fires, in the county's local time (default Fri 15:00)."""

    day_of_week: str = "fri"
    hour: int = 15
    minute: int = 0


class Scheduler:
    """A service component owning one AsyncIOScheduler."""

    name = "scheduler"

    def __init__(
        self,
        *,
        database_url: str,
        timezone: str,
        reminder: ReminderSchedule | None = None,
        clock: Callable[[], datetime] = utcnow,
        misfire_grace_s: int = 3600,
    ) -> None:
        self.database_url = database_url
        self.timezone = timezone
        self.zone = ZoneInfo(timezone)
        self.reminder = reminder or ReminderSchedule()
        self.clock = clock
        self.misfire_grace_s = misfire_grace_s
        self._scheduler: AsyncIOScheduler | None = None
        self._interval_jobs: list[tuple[Callable[[], Awaitable[None]], float, str, str]] = []
        self._daily_jobs: list[tuple[Callable[[], Awaitable[None]], int, int, str, str]] = []

    def add_daily_job(
        self,
        func: Callable[[], Awaitable[None]],
        *,
        hour: int,
        minute: int,
        job_id: str,
        name: str,
    ) -> None:
        """Run `func` every day at hour:minute in the county's zone (one instance at a time);
        jobs added before `start` are registered when it starts."""
        self._daily_jobs.append((func, hour, minute, job_id, name))
        if self._scheduler is not None:
            self._register_daily(self._scheduler, func, hour, minute, job_id, name)

    def _register_daily(
        self,
        scheduler: AsyncIOScheduler,
        func: Callable[[], Awaitable[None]],
        hour: int,
        minute: int,
        job_id: str,
        name: str,
    ) -> None:
        scheduler.add_job(
            func,
            CronTrigger(hour=hour, minute=minute, timezone=self.zone),
            id=job_id,
            name=name,
            replace_existing=True,
            max_instances=1,
            coalesce=True,
            misfire_grace_time=self.misfire_grace_s,
        )

    def add_interval_job(
        self, func: Callable[[], Awaitable[None]], *, seconds: float, job_id: str, name: str
    ) -> None:
        """Run `func` every `seconds` from start (one instance at a time, late runs coalesced);
        jobs added before `start` are registered when it starts."""
        self._interval_jobs.append((func, seconds, job_id, name))
        if self._scheduler is not None:
            self._register_interval(self._scheduler, func, seconds, job_id, name)

    def _register_interval(
        self,
        scheduler: AsyncIOScheduler,
        func: Callable[[], Awaitable[None]],
        seconds: float,
        job_id: str,
        name: str,
    ) -> None:
        scheduler.add_job(
            func,
            IntervalTrigger(seconds=seconds),
            id=job_id,
            name=name,
            replace_existing=True,
            max_instances=1,
            coalesce=True,
            misfire_grace_time=max(1, int(seconds)),
            next_run_time=self.clock(),
        )

    def reminder_trigger(self) -> CronTrigger:
        """The weekly reminder's trigger, in the county's zone."""
        r = self.reminder
        return CronTrigger(
            day_of_week=r.day_of_week, hour=r.hour, minute=r.minute, timezone=self.zone
        )

    async def start(self) -> None:
        """Create the scheduler on the running loop and register the standing jobs."""
        scheduler = AsyncIOScheduler(timezone=self.zone)
        scheduler.add_job(
            run_weekly_reminder,
            self.reminder_trigger(),
            id=REMINDER_JOB_ID,
            name="weekly duty roster reminder",
            args=[self.database_url, self.timezone],
            replace_existing=True,
            misfire_grace_time=self.misfire_grace_s,
            coalesce=True,
        )
        for func, seconds, job_id, name in self._interval_jobs:
            self._register_interval(scheduler, func, seconds, job_id, name)
        for func, hour, minute, job_id, name in self._daily_jobs:
            self._register_daily(scheduler, func, hour, minute, job_id, name)
        scheduler.start()
        self._scheduler = scheduler
        log.info("scheduler started; reminder next at %s", self.next_fire_time(REMINDER_JOB_ID))

    async def stop(self) -> None:
        """Shut the scheduler down without waiting for running jobs."""
        scheduler, self._scheduler = self._scheduler, None
        if scheduler is not None and scheduler.running:
            scheduler.shutdown(wait=False)
            await asyncio.sleep(0)  # AsyncIOScheduler shuts down via call_soon_threadsafe

    def health(self) -> Health:
        """Running, and when the reminder fires next."""
        if self._scheduler is None or not self._scheduler.running:
            return Health(False, "not running")
        return Health(True, f"reminder next at {self.next_fire_time(REMINDER_JOB_ID)}")

    def _job(self, job_id: str) -> Job:
        if self._scheduler is None:
            raise RuntimeError("the scheduler is not running")
        job = self._scheduler.get_job(job_id)
        if job is None:
            raise KeyError(job_id)
        return job

    def job_ids(self) -> list[str]:
        """Ids of the registered jobs."""
        return [] if self._scheduler is None else [j.id for j in self._scheduler.get_jobs()]

    def next_fire_time(self, job_id: str, after: datetime | None = None) -> datetime | None:
        """When the registered job's own trigger fires next after `after` (default: the clock)."""
        fire: datetime | None = self._job(job_id).trigger.get_next_fire_time(
            None, after or self.clock()
        )
        return fire

    def run_job(self, job_id: str, now: datetime | None = None) -> Any:
        """Run a registered job's function with its stored arguments, as at `now`."""
        job = self._job(job_id)
        return job.func(*job.args, **{**job.kwargs, "now": now or self.clock()})

    def schedule_duty_check(self, unit_code: str, at: datetime) -> str:
        """Schedule a 查岗 call to the unit at `at` (aware); returns the job id."""
        job_id = f"{DUTY_CHECK_PREFIX}{unit_code}:{at.astimezone(self.zone):%Y%m%dT%H%M}"
        if self._scheduler is None:
            raise RuntimeError("the scheduler is not running")
        self._scheduler.add_job(
            duty_check_job,
            DateTrigger(at, timezone=self.zone),
            id=job_id,
            name=f"duty check {unit_code}",
            args=[self.database_url, self.timezone, unit_code],
            replace_existing=True,
            misfire_grace_time=300,
        )
        return job_id
