"""The roster reminder dispatcher: claim due reminder calls, place them, store what happened.

A `ClaimedWorkRunner` (calls/claimed_work.py) over `ReminderCalls`, like the survey dispatcher
(calls/survey_job.py): every `poll_s` (the interval job `reminders.dispatch`) each process
inside the calling hours claims due reminders (storage.reminders.claim_due: lease, SKIP LOCKED,
one call per number), places each through the `ReminderCaller` seam, renews the lease while the
call runs, then stores the attempt and what callflows.survey.plan_next decides (the survey's
retry schedule); key 1 is `acknowledged`, running out of attempts ends `not_acknowledged`,
`no_answer`, `busy` or `failed` (callflows.roster_reminder.final_status).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy.orm import Session, sessionmaker

from callflows.ivr import KeyPromptSettings
from callflows.roster_reminder import default_reminder_ivr, final_status
from calls.claimed_work import ClaimedWorkComponent, ClaimedWorkRunner, Event
from calls.hooks import Publish
from calls.key_prompt_calls import KeyPromptCallResult, KeyPromptWork
from calls.survey_job import SurveyRunSettings
from storage import reminders as repo
from storage.base import utcnow
from storage.models.reminders import ReminderStatus
from telephony.privacy import mask_number

log = logging.getLogger(__name__)

DISPATCH_JOB_ID = "reminders.dispatch"


class ReminderCaller(Protocol):
    """Places one reminder call; busy / no answer / no key are outcomes, not exceptions."""

    async def call(
        self, reminder_id: str, unit_code: str, number: str, settings: KeyPromptSettings
    ) -> KeyPromptCallResult:
        """Call `number` for the unit's reminder with the IVR `settings`."""
        ...


class ReminderCalls(KeyPromptWork[repo.ClaimedReminder]):
    """The roster reminders as claimed work (calls/claimed_work.py) of one process."""

    label = "reminder"
    log = log

    def __init__(
        self,
        caller: ReminderCaller,
        settings: SurveyRunSettings,
        ivr: KeyPromptSettings,
        clock: Callable[[], datetime],
    ) -> None:
        super().__init__(repo.REMINDERS, repo.claim_due, repo.record_attempt, settings, clock)
        self.caller = caller
        self.ivr = ivr

    def place(self, item: repo.ClaimedReminder) -> Coroutine[Any, Any, KeyPromptCallResult]:
        """The call through the `ReminderCaller` seam."""
        log.info(
            "reminder %s (%s %s): attempt %d to %s",
            item.id, item.unit_code, item.week, item.attempt_no, mask_number(item.number),
        )  # fmt: skip
        return self.caller.call(item.id, item.unit_code, item.number, self.ivr)

    def store(
        self, session: Session, item: repo.ClaimedReminder, result: KeyPromptCallResult
    ) -> Event | None:
        """The attempt and the next step; `roster.reminder` unless the lease was lost."""
        decided = self.record(session, item.id, item.attempt_no, result.attempt())
        if decided is None:
            return None
        plan, now = decided
        final = final_status(plan, result.outcome)
        log.info("reminder %s (%s): %s (%s)", item.id, item.unit_code, final or "retry",
                 plan.reason)  # fmt: skip
        if final is None:
            status = repo.apply_outcome(
                session, item.id, status=ReminderStatus.PENDING, now=now, reason=plan.reason,
                next_attempt_at=plan.next_attempt_at,
            )  # fmt: skip
        else:
            status = repo.apply_outcome(
                session, item.id, status=ReminderStatus(final), now=now, reason=plan.reason
            )
        return "roster.reminder", {
            "reminder_id": item.id, "unit_code": item.unit_code, "week": item.week,
            "outcome": result.outcome.value, "status": status.value,
        }  # fmt: skip


class ReminderDispatcher(ClaimedWorkRunner[repo.ClaimedReminder, KeyPromptCallResult]):
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
        work = ReminderCalls(caller, settings, ivr or default_reminder_ivr(), clock)
        super().__init__(session_factory, work, settings, clock=clock, publish=publish)


class ReminderDispatcherComponent(ClaimedWorkComponent):
    """A service component: `tick` as the interval job `reminders.dispatch`; calls cancelled
    on stop."""

    name = "reminders"
    job_id = DISPATCH_JOB_ID
    job_name = "roster reminder dispatcher"
    failure = "reminder dispatch failed"
    log = log
