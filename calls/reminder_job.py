"""The roster reminder dispatcher: claim due reminder calls, place them, store what happened.

Like the survey dispatcher (calls/survey_job.py), every `poll_s` (the interval job
`reminders.dispatch`) each process inside the calling hours claims due reminders
(storage.reminders.claim_due: lease, SKIP LOCKED, one call per number), places each through the
`ReminderCaller` seam, renews the lease while the call runs, then stores the attempt and what
callflows.survey.plan_next decides (the survey's retry schedule); key 1 is `acknowledged`,
running out of attempts ends `not_acknowledged`, `no_answer`, `busy` or `failed`
(callflows.roster_reminder.final_status).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from functools import partial
from typing import Any, Protocol

from sqlalchemy.orm import Session, sessionmaker

from callflows.ivr import CallOutcome, KeyPromptSettings
from callflows.roster_reminder import default_reminder_ivr, final_status
from callflows.survey import AttemptRecord, plan_next
from calls.component import Health
from calls.hooks import Publish
from calls.survey_job import SurveyCallResult, SurveyRunSettings
from storage import reminders as repo
from storage.attempts import AttemptValues
from storage.base import utcnow
from storage.engine import session_scope
from storage.models.reminders import ReminderStatus
from telephony.privacy import mask_number

log = logging.getLogger(__name__)

DISPATCH_JOB_ID = "reminders.dispatch"


class ReminderCaller(Protocol):
    """Places one reminder call; busy / no answer / no key are outcomes, not exceptions."""

    async def call(
        self, reminder_id: str, unit_code: str, number: str, settings: KeyPromptSettings
    ) -> SurveyCallResult:
        """Call `number` for the unit's reminder with the IVR `settings`."""
        ...


class ReminderDispatcher:
    """Claims and calls due roster reminders for one process. `settings` are the survey
    dispatcher's (calling hours, retries, lease, poll, concurrency, node)."""

    def __init__(
        self,
        session_factory: sessionmaker[Session],
        caller: ReminderCaller,
        settings: SurveyRunSettings,
        *,
        ivr: KeyPromptSettings | None = None,
        clock: Callable[[], datetime] = utcnow,
        publish: Publish | None = None,
    ) -> None:
        self.session_factory = session_factory
        self.caller = caller
        self.settings = settings
        self.ivr = ivr or default_reminder_ivr()
        self.clock = clock
        self.publish = publish
        self.lease = timedelta(seconds=settings.lease_s)
        self._tasks: dict[str, asyncio.Task[None]] = {}

    @property
    def in_flight(self) -> int:
        """Reminder calls this process is placing now."""
        return len(self._tasks)

    async def tick(self) -> int:
        """Claim due reminders into the free call slots and start their calls."""
        now = self.clock()
        free = self.settings.max_concurrent - len(self._tasks)
        if free <= 0 or not self.settings.schedule.hours.contains(now):
            return 0
        claimed = await asyncio.to_thread(self._claim, now, free)
        for item in claimed:
            task = asyncio.create_task(self._run(item), name=f"reminder-{item.id}")
            self._tasks[item.id] = task
            task.add_done_callback(partial(self._forget, item.id))
        return len(claimed)

    def _forget(self, reminder_id: str, _task: asyncio.Task[None]) -> None:
        self._tasks.pop(reminder_id, None)

    async def drain(self) -> None:
        """Wait for every call in flight."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks.values()), return_exceptions=True)

    async def cancel_all(self) -> None:
        """Cancel calls in flight (shutdown); their leases expire and they are called again."""
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _claim(self, now: datetime, limit: int) -> list[repo.ClaimedReminder]:
        with session_scope(self.session_factory) as session:
            return repo.claim_due(session, node=self.settings.node, now=now, lease=self.lease,
                                  limit=limit)  # fmt: skip

    async def _run(self, item: repo.ClaimedReminder) -> None:
        log.info(
            "reminder %s (%s %s): attempt %d to %s",
            item.id, item.unit_code, item.week, item.attempt_no, mask_number(item.number),
        )  # fmt: skip
        call = asyncio.create_task(self.caller.call(item.id, item.unit_code, item.number, self.ivr))
        started = self.clock()
        while True:
            done, _ = await asyncio.wait({call}, timeout=self.settings.lease_s / 3)
            if done:
                break
            await asyncio.to_thread(self._renew, item.id)
        try:
            result = call.result()
        except Exception as exc:
            log.exception("reminder %s: the caller failed", item.id)
            result = SurveyCallResult(
                CallOutcome.FAILED, None, "", started, self.clock(), None, type(exc).__name__
            )
        status = await asyncio.to_thread(self._store, item, result)
        if self.publish is not None and status is not None:
            self.publish(
                "roster.reminder",
                {"reminder_id": item.id, "unit_code": item.unit_code, "week": item.week,
                 "outcome": result.outcome.value, "status": status.value},
            )  # fmt: skip

    def _renew(self, reminder_id: str) -> None:
        with session_scope(self.session_factory) as session:
            until = self.clock() + self.lease
            if not repo.renew_lease(
                session, node=self.settings.node, reminder_id=reminder_id, until=until
            ):
                log.warning("reminder %s: lease lost while calling", reminder_id)

    def _store(self, item: repo.ClaimedReminder, result: SurveyCallResult) -> ReminderStatus | None:
        outcome = result.outcome
        values = AttemptValues(
            outcome=outcome.value,
            key=result.key if outcome is CallOutcome.ANSWER else None,
            digits=result.digits,
            started_at=result.started_at,
            ended_at=result.ended_at,
            recording_id=result.recording_id,
            sip_reason=result.sip_reason,
        )
        with session_scope(self.session_factory) as session:
            owned, history = repo.record_attempt(
                session, item.id, node=self.settings.node, attempt_no=item.attempt_no,
                values=values,
            )  # fmt: skip
            if not owned:
                return None
            now = self.clock()
            records = [AttemptRecord(CallOutcome(o), at) for o, at in history]
            plan = plan_next(now, records, self.settings.schedule)
            final = final_status(plan, outcome)
            log.info("reminder %s (%s): %s (%s)", item.id, item.unit_code, final or "retry",
                     plan.reason)  # fmt: skip
            if final is None:
                return repo.apply_outcome(
                    session, item.id, status=ReminderStatus.PENDING, now=now, reason=plan.reason,
                    next_attempt_at=plan.next_attempt_at,
                )  # fmt: skip
            return repo.apply_outcome(
                session, item.id, status=ReminderStatus(final), now=now, reason=plan.reason
            )


class ReminderDispatcherComponent:
    """A service component: `tick` as the interval job `reminders.dispatch`; calls cancelled
    on stop."""

    name = "reminders"

    def __init__(self, dispatcher: ReminderDispatcher) -> None:
        self.dispatcher = dispatcher
        self._last_error: str | None = None

    def register(self, add_interval_job: Callable[..., None]) -> None:
        """Add the dispatch job through the scheduler's `add_interval_job`."""
        add_interval_job(
            self.tick,
            seconds=self.dispatcher.settings.poll_s,
            job_id=DISPATCH_JOB_ID,
            name="roster reminder dispatcher",
        )

    async def tick(self) -> None:
        """One round; a failure is logged and shown in health, the next tick retries."""
        try:
            await self.dispatcher.tick()
            self._last_error = None
        except Exception as exc:  # the database may be briefly unreachable
            log.exception("reminder dispatch failed")
            self._last_error = f"{type(exc).__name__}: {exc}"

    async def start(self) -> None:
        """Nothing to start: the scheduler runs the job."""

    async def stop(self) -> None:
        """Cancel calls in flight."""
        await self.dispatcher.cancel_all()

    def health(self) -> Health:
        """Healthy unless the last round failed."""
        if self._last_error:
            return Health(False, self._last_error)
        return Health(True, f"{self.dispatcher.in_flight} calls in flight")

    def describe(self) -> dict[str, Any]:
        """What the dispatcher is configured with (no numbers)."""
        return {"node": self.dispatcher.settings.node, "poll_s": self.dispatcher.settings.poll_s}
