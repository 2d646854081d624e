"""Scheduled 查岗 (LINKCALL_DUTY_CHECK_SCHEDULE): plan the checks as rows, place them when due.

Every `poll_s` (the interval job `duty_checks.scheduled`) each process:

1. plans the next slot of every rule (registry.duty_schedule) that is not planned yet: one
   `planned_duty_checks` row per unit picked (all active units, or a random sample), stored
   once for the slot whoever plans first (storage.duty_plans.plan_slot);
2. claims the planned checks that are due (a lease; a check more than `grace_s` late is
   `missed`) and runs each with `run_duty_check`: the number on duty at that moment, down the
   dial list on no answer / busy; pass or fail as the caller's verdict says. Claiming, the
   lease and storing are the claimed-work runner's (calls/claimed_work.py) over
   `ScheduledDutyChecks`, as for surveys and roster reminders.

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
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session, sessionmaker

from calls.claimed_work import INTERRUPTED, ClaimedWorkComponent, ClaimedWorkRunner, Event
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


@dataclass(frozen=True, slots=True)
class PlanEnd:
    """How a planned check ended: done with its stored check, or failed with a reason."""

    status: PlanStatus
    check_id: str | None
    detail: str


class ScheduledDutyChecks:
    """The planned checks as claimed work (calls/claimed_work.py) of one process."""

    label = "duty-check"

    def __init__(
        self,
        session_factory: sessionmaker[Session],
        caller: DutyCheckCaller,
        settings: DutyCheckPlanSettings,
        clock: Callable[[], datetime],
    ) -> None:
        self.session_factory = session_factory
        self.caller = caller
        self.settings = settings
        self.clock = clock

    def may_claim(self, now: datetime) -> bool:
        """At any time: the schedule placed the checks."""
        return True

    def claim(
        self, session: Session, *, now: datetime, lease: timedelta, limit: int
    ) -> list[repo.PlannedCheck]:
        """Due planned checks; those more than `grace_s` late are marked missed."""
        s = self.settings
        return repo.claim_due(
            session, node=s.node, now=now, lease=lease, grace=timedelta(seconds=s.grace_s),
            limit=limit,
        )  # fmt: skip

    def renew(self, session: Session, item: repo.PlannedCheck, until: datetime) -> None:
        """Extend the planned check's lease; a lost lease is logged."""
        if not repo.renew_lease(session, node=self.settings.node, plan_id=item.id, until=until):
            log.warning("scheduled duty check %s: lease lost", item.id)

    async def place(self, item: repo.PlannedCheck) -> PlanEnd:
        """The check (`run_duty_check`: the number on duty now, down the dial list)."""
        log.info("scheduled duty check %s of %s due %s", item.id, item.unit_code, item.due_at)
        record = await run_duty_check(
            self.session_factory, self.caller, item.unit_code, zone=self.settings.zone,
            policy=self.settings.policy, clock=self.clock, timeout_s=self.settings.timeout_s,
        )  # fmt: skip
        return PlanEnd(PlanStatus.DONE, record.id, record.outcome.value)

    def failed(self, item: repo.PlannedCheck, exc: Exception, started: datetime) -> PlanEnd:
        """No duty phone, or a check that raised: a failed plan with the reason, never lost."""
        if isinstance(exc, NoDutyPhone):
            return PlanEnd(PlanStatus.FAILED, None, str(exc))
        log.exception("scheduled duty check %s failed", item.id)
        return PlanEnd(PlanStatus.FAILED, None, f"{type(exc).__name__}: {exc}")

    def interrupted(self, item: repo.PlannedCheck, started: datetime) -> PlanEnd:
        """The check was cancelled (shutdown): a failed plan whose detail says so (no check is
        stored for the unit: it was not its fault)."""
        log.warning("scheduled duty check %s: interrupted by shutdown", item.id)
        return PlanEnd(PlanStatus.FAILED, None, INTERRUPTED)

    def store(self, session: Session, item: repo.PlannedCheck, result: PlanEnd) -> Event | None:
        """How the planned check ended (nothing published)."""
        repo.finish(
            session, item.id, status=result.status, check_id=result.check_id, detail=result.detail
        )
        return None


class DutyCheckPlanner(ClaimedWorkRunner[repo.PlannedCheck, PlanEnd]):
    """Plans and places the scheduled duty checks of one process."""

    settings: DutyCheckPlanSettings

    def __init__(
        self,
        session_factory: sessionmaker[Session],
        caller: DutyCheckCaller,
        settings: DutyCheckPlanSettings,
        *,
        clock: Callable[[], datetime] = utcnow,
        rng: random.Random | None = None,
    ) -> None:
        work = ScheduledDutyChecks(session_factory, caller, settings, clock)
        super().__init__(session_factory, work, settings, clock=clock)
        self.rng = rng

    async def tick(self) -> int:
        """Plan the next slots, then start the due checks; returns how many were started."""
        now = self.clock()
        for rule in self.settings.rules:
            await asyncio.to_thread(self._plan, rule, now)
        return await self.start_due(now)

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


class DutyCheckPlannerComponent(ClaimedWorkComponent):
    """A service component: the planner's `tick` as the interval job `duty_checks.scheduled`."""

    name = "duty_checks"
    job_id = JOB_ID
    job_name = "scheduled duty checks"
    failure = "scheduled duty checks failed"
    log = log

    def __init__(self, planner: DutyCheckPlanner) -> None:
        super().__init__(planner)
        self.planner = planner

    def load(self) -> str:
        """The rules and the checks in flight."""
        return (f"{len(self.planner.settings.rules)} rule(s), "
                f"{self.planner.in_flight} check(s) in flight")  # fmt: skip

    def describe(self) -> dict[str, Any]:
        """The schedule."""
        return {"rules": [r.text for r in self.planner.settings.rules]}
