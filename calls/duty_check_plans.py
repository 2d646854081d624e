"""Scheduled 查岗 (LINKCALL_DUTY_CHECK_SCHEDULE): plan the checks as rows, place them when due.

Every `poll_s` (the interval job `duty_checks.scheduled`) each process:

1. plans the next slot of every rule (registry.duty_schedule) that is not planned yet: one
   `planned_duty_checks` row per unit picked (all active units, or a random sample), stored
   once for the slot whoever plans first (storage.duty_plans.plan_slot);
2. claims the planned checks that are due (a lease; a check more than `grace_s` late is
   `missed`) and runs each with `run_duty_check`: the number on duty at that moment, down the
   dial list on no answer / busy; pass or fail as the caller's verdict says.

The plan lives in the database, not in the scheduler's memory: a check planned before a
restart is placed after it when due, by whichever node claims it first.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session, sessionmaker

from calls.component import Health
from calls.duty_check_job import DutyCheckCaller, NoDutyPhone, run_duty_check
from registry.duty_schedule import DutyCheckRule
from registry.numbers import DialPolicy
from storage import duty_plans as repo
from storage import registry as registry_repo
from storage.base import utcnow
from storage.engine import session_scope
from storage.models.reminders import PlanStatus

log = logging.getLogger(__name__)

JOB_ID = "duty_checks.scheduled"


@dataclass(frozen=True, slots=True)
class DutyCheckPlanSettings:
    """The schedule and how this process places its checks."""

    rules: tuple[DutyCheckRule, ...]
    zone: ZoneInfo
    node: str
    policy: DialPolicy
    timeout_s: float = 45.0
    poll_s: float = 15.0
    lease_s: float = 300.0
    grace_s: float = 3600.0
    max_concurrent: int = 5


class DutyCheckPlanner:
    """Plans and places the scheduled duty checks of one process."""

    def __init__(
        self,
        session_factory: sessionmaker[Session],
        caller: DutyCheckCaller,
        settings: DutyCheckPlanSettings,
        *,
        clock: Callable[[], datetime] = utcnow,
        rng: random.Random | None = None,
    ) -> None:
        self.session_factory = session_factory
        self.caller = caller
        self.settings = settings
        self.clock = clock
        self.rng = rng
        self._tasks: dict[str, asyncio.Task[None]] = {}

    @property
    def in_flight(self) -> int:
        """Checks this process is placing now."""
        return len(self._tasks)

    async def tick(self) -> int:
        """Plan the next slots, then start the due checks; returns how many were started."""
        now = self.clock()
        for rule in self.settings.rules:
            await asyncio.to_thread(self._plan, rule, now)
        free = self.settings.max_concurrent - len(self._tasks)
        if free <= 0:
            return 0
        claimed = await asyncio.to_thread(self._claim, now, free)
        for plan in claimed:
            task = asyncio.create_task(self._run(plan), name=f"duty-check-{plan.id}")
            self._tasks[plan.id] = task
            task.add_done_callback(partial(self._forget, plan.id))
        return len(claimed)

    def _forget(self, plan_id: str, _task: asyncio.Task[None]) -> None:
        self._tasks.pop(plan_id, None)

    async def drain(self) -> None:
        """Wait for every check in flight."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks.values()), return_exceptions=True)

    async def cancel_all(self) -> None:
        """Cancel checks in flight (shutdown); their leases expire and they are claimed again."""
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _plan(self, rule: DutyCheckRule, now: datetime) -> None:
        due = rule.next_after(now, self.settings.zone)
        with session_scope(self.session_factory) as session:
            codes = [u.code for u in registry_repo.list_units(session) if u.active]
            planned = repo.plan_slot(
                session, due_at=due, rule=rule.text, unit_codes=rule.pick(codes, self.rng), now=now
            )
        if planned is not None:
            log.info("duty checks planned at %s (%s): %d unit(s)", due.isoformat(), rule.text,
                     len(planned))  # fmt: skip

    def _claim(self, now: datetime, limit: int) -> list[repo.PlannedCheck]:
        s = self.settings
        with session_scope(self.session_factory) as session:
            return repo.claim_due(
                session, node=s.node, now=now, lease=timedelta(seconds=s.lease_s),
                grace=timedelta(seconds=s.grace_s), limit=limit,
            )  # fmt: skip

    async def _run(self, plan: repo.PlannedCheck) -> None:
        log.info("scheduled duty check %s of %s due %s", plan.id, plan.unit_code, plan.due_at)
        check = asyncio.create_task(
            run_duty_check(
                self.session_factory, self.caller, plan.unit_code, zone=self.settings.zone,
                policy=self.settings.policy, clock=self.clock, timeout_s=self.settings.timeout_s,
            )
        )  # fmt: skip
        while True:
            done, _ = await asyncio.wait({check}, timeout=self.settings.lease_s / 3)
            if done:
                break
            await asyncio.to_thread(self._renew, plan.id)
        try:
            record = check.result()
            status, check_id, detail = PlanStatus.DONE, record.id, record.outcome.value
        except NoDutyPhone as exc:
            status, check_id, detail = PlanStatus.FAILED, None, str(exc)
        except Exception as exc:  # stored as a failed plan, never lost
            log.exception("scheduled duty check %s failed", plan.id)
            status, check_id, detail = PlanStatus.FAILED, None, f"{type(exc).__name__}: {exc}"
        await asyncio.to_thread(self._finish, plan.id, status, check_id, detail)

    def _renew(self, plan_id: str) -> None:
        with session_scope(self.session_factory) as session:
            until = self.clock() + timedelta(seconds=self.settings.lease_s)
            if not repo.renew_lease(session, node=self.settings.node, plan_id=plan_id, until=until):
                log.warning("scheduled duty check %s: lease lost", plan_id)

    def _finish(self, plan_id: str, status: PlanStatus, check_id: str | None, detail: str) -> None:
        with session_scope(self.session_factory) as session:
            repo.finish(session, plan_id, status=status, check_id=check_id, detail=detail)


class DutyCheckPlannerComponent:
    """A service component: the planner's `tick` as the interval job `duty_checks.scheduled`."""

    name = "duty_checks"

    def __init__(self, planner: DutyCheckPlanner) -> None:
        self.planner = planner
        self._last_error: str | None = None

    def register(self, add_interval_job: Callable[..., None]) -> None:
        """Add the job through the scheduler's `add_interval_job`."""
        add_interval_job(
            self.tick, seconds=self.planner.settings.poll_s, job_id=JOB_ID,
            name="scheduled duty checks",
        )  # fmt: skip

    async def tick(self) -> None:
        """One round; a failure is logged and shown in health, the next tick retries."""
        try:
            await self.planner.tick()
            self._last_error = None
        except Exception as exc:  # the database may be briefly unreachable
            log.exception("scheduled duty checks failed")
            self._last_error = f"{type(exc).__name__}: {exc}"

    async def start(self) -> None:
        """Nothing to start: the scheduler runs the job."""

    async def stop(self) -> None:
        """Cancel checks in flight (their leases expire; they are claimed again)."""
        await self.planner.cancel_all()

    def health(self) -> Health:
        """Healthy unless the last round failed."""
        if self._last_error:
            return Health(False, self._last_error)
        return Health(True, f"{len(self.planner.settings.rules)} rule(s), "
                      f"{self.planner.in_flight} check(s) in flight")  # fmt: skip

    def describe(self) -> dict[str, Any]:
        """The schedule."""
        return {"rules": [r.text for r in self.planner.settings.rules]}
