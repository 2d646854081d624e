"""The survey dispatcher: claim due callback surveys, call them, store what happened.

A `ClaimedWorkRunner` (calls/claimed_work.py) over `SurveyCalls`: every `poll_s` (the interval
job `surveys.dispatch` on the service's one scheduler) each process, inside calling hours,
claims as many due surveys as it has free call slots (storage.surveys.claim_due: a lease, SKIP
LOCKED, one call per number), hands each to the `SurveyCaller` seam, renews the lease while the
call runs, then stores the attempt and what callflows.survey.plan_next decides: call again at a
time, answered, or unreached. An answer in `rework_answers` flags the incident.

The real caller (SIP user agent + media IVR, `callflows.survey.survey_call`) implements
`SurveyCaller`; tests use fakes. A process that dies mid-call loses nothing: its leases expire
and another process (or this one after a restart) claims those surveys again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from sqlalchemy.orm import Session, sessionmaker

from callflows.ivr import KeyPromptSettings
from callflows.survey import SurveyPlan, SurveyProgress, SurveySchedule
from calls.claimed_work import ClaimedWorkComponent, ClaimedWorkRunner, Event
from calls.hooks import Publish
from calls.key_prompt_calls import KeyPromptCallResult, KeyPromptWork
from storage import incidents as incident_repo
from storage import surveys as repo
from storage import webhooks
from storage.attempts import AttemptValues
from storage.base import utcnow
from storage.models.surveys import SurveyStatus as StoredStatus
from telephony.privacy import mask_number

log = logging.getLogger(__name__)

DISPATCH_JOB_ID = "surveys.dispatch"
UNSATISFIED_EVENT = "survey.unsatisfied"


SurveyCallResult = KeyPromptCallResult
"""What one survey call observed (the key-prompt call result every such job shares)."""


@dataclass(frozen=True, slots=True)
class SurveyRunSettings:
    """How this process places surveys (from the service settings)."""

    schedule: SurveySchedule
    ivr: KeyPromptSettings
    node: str  # the claim owner: this node's name and process id
    rework_answers: frozenset[str] = frozenset({"unsatisfied"})
    lease_s: float = 300.0
    max_concurrent: int = 10
    poll_s: float = 15.0


class SurveyCaller(Protocol):
    """Places one survey call: dial, prompt, collect one key, thank, hang up.

    Return when the call has ended. Busy, no answer, no key and failures are outcomes, not
    exceptions; an exception is stored as a failed attempt with the exception's name.
    """

    async def call(
        self, survey_id: str, number: str, settings: KeyPromptSettings
    ) -> SurveyCallResult:
        """Call `number` for survey `survey_id` with the IVR `settings`."""
        ...


class SurveyCalls(KeyPromptWork[repo.ClaimedSurvey]):
    """The surveys as claimed work (calls/claimed_work.py) of one process (`settings.node`)."""

    label = "survey"
    log = log

    def __init__(
        self, caller: SurveyCaller, settings: SurveyRunSettings, clock: Callable[[], datetime]
    ) -> None:
        super().__init__(repo.SURVEYS, repo.claim_due, repo.record_attempt, settings, clock)
        self.caller = caller
        self.settings = settings

    def place(self, item: repo.ClaimedSurvey) -> Coroutine[Any, Any, SurveyCallResult]:
        """The call through the `SurveyCaller` seam."""
        log.info("survey %s: attempt %d to %s", item.id, item.attempt_no, mask_number(item.number))
        return self.caller.call(item.id, item.number, self.settings.ivr)

    def store(
        self, session: Session, item: repo.ClaimedSurvey, result: SurveyCallResult
    ) -> Event | None:
        """The attempt and the next step; `survey.attempt` unless the lease was lost."""
        values = result.attempt()
        decided = self.record(session, item.id, item.attempt_no, values)
        if decided is None:
            return None
        plan, now = decided
        info = self._apply(session, item.id, plan, values, result.answer, now)
        data = {"survey_id": item.id, "outcome": result.outcome.value, "status": info.status.value}
        return "survey.attempt", data

    def _apply(
        self,
        session: Session,
        survey_id: str,
        plan: SurveyPlan,
        values: AttemptValues,
        answer: str | None,
        now: datetime,
    ) -> repo.SurveyInfo:
        log.info("survey %s: %s (%s)", survey_id, plan.status.value, plan.reason)
        if plan.status is SurveyProgress.SCHEDULED:
            return repo.apply_outcome(
                session, survey_id, status=StoredStatus.PENDING, now=now, reason=plan.reason,
                next_attempt_at=plan.next_attempt_at,
            )  # fmt: skip
        if plan.status is SurveyProgress.UNREACHED:
            return repo.apply_outcome(
                session, survey_id, status=StoredStatus.UNREACHED, now=now, reason=plan.reason
            )
        rework = (
            f"callback answer {values.key}: {answer}"
            if answer in self.settings.rework_answers
            else None
        )
        info = repo.apply_outcome(
            session, survey_id, status=StoredStatus.ANSWERED, now=now, reason=plan.reason,
            answer_key=values.key, answer=answer, answered_at=values.ended_at,
            rework_reason=rework,
        )  # fmt: skip
        if rework is not None:
            _queue_unsatisfied(session, info, now)
        return info


class SurveyDispatcher(ClaimedWorkRunner[repo.ClaimedSurvey, SurveyCallResult]):
    """Claims and calls due surveys for one process (`settings.node`)."""

    def __init__(
        self,
        session_factory: sessionmaker[Session],
        caller: SurveyCaller,
        settings: SurveyRunSettings,
        *,
        clock: Callable[[], datetime] = utcnow,
        publish: Publish | None = None,
    ) -> None:
        work = SurveyCalls(caller, settings, clock)
        super().__init__(session_factory, work, settings, clock=clock, publish=publish)
        self.node = settings.node


def _queue_unsatisfied(session: Session, info: repo.SurveyInfo, now: datetime) -> None:
    """The `survey.unsatisfied` webhook event (for rework), in the answer's transaction."""
    unit_code = None
    if info.incident_id is not None:
        unit_code = incident_repo.get_incident(session, info.incident_id).unit_code
    webhooks.enqueue(
        session,
        UNSATISFIED_EVENT,
        {
            "survey_id": info.id,
            "incident_id": info.incident_id,
            "unit_code": unit_code,
            "answer": info.answer,
            "answer_key": info.answer_key,
            "answered_at": info.answered_at.astimezone(UTC).isoformat()
            if info.answered_at
            else None,
        },
        now=now,
        dedupe_key=f"{UNSATISFIED_EVENT}:{info.id}",
    )


class SurveyDispatcherComponent(ClaimedWorkComponent):
    """A service component: the dispatcher's `tick` as the interval job `surveys.dispatch` on the
    service's one scheduler (`register`), and its calls cancelled on stop."""

    name = "surveys"
    job_id = DISPATCH_JOB_ID
    job_name = "callback survey dispatcher"
    failure = "survey dispatch failed"
    log = log
