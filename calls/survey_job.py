"""The survey dispatcher: claim due callback surveys, call them, store what happened.

Every `poll_s` (the interval job `surveys.dispatch` on the service's one scheduler) each
process, inside calling
hours, claims as many due surveys as it has free call slots (storage.surveys.claim_due: a
lease, SKIP LOCKED, one call per number), hands each to the `SurveyCaller` seam, renews the
lease while the call runs, then stores the attempt and what callflows.survey.plan_next decides:
call again at a time, answered, or unreached. An answer in `rework_answers` flags the incident.

The real caller (SIP user agent + media IVR, `callflows.survey.survey_call`) implements
`SurveyCaller`; tests use fakes. A process that dies mid-call loses nothing: its leases expire
and another process (or this one after a restart) claims those surveys again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any, Protocol

from sqlalchemy.orm import Session, sessionmaker

from callflows.ivr import CallOutcome, KeyPromptSettings
from callflows.survey import AttemptRecord, SurveyPlan, SurveyProgress, SurveySchedule, plan_next
from calls.component import Health
from calls.hooks import Publish
from storage import incidents as incident_repo
from storage import surveys as repo
from storage import webhooks
from storage.attempts import AttemptValues
from storage.base import utcnow
from storage.engine import session_scope
from storage.models.surveys import SurveyStatus as StoredStatus
from telephony.privacy import mask_number

log = logging.getLogger(__name__)

DISPATCH_JOB_ID = "surveys.dispatch"
UNSATISFIED_EVENT = "survey.unsatisfied"


@dataclass(frozen=True, slots=True)
class SurveyCallResult:
    """What one survey call observed. `key` is the accepted key (None: none) and `answer` its
    meaning as the IVR flow decided it (the one place keys get a meaning), `digits` every digit
    pressed in order (wrong ones too), `sip_reason` the end reason or SIP status text."""

    outcome: CallOutcome
    key: str | None
    digits: str
    started_at: datetime
    ended_at: datetime
    recording_id: str | None = None
    sip_reason: str | None = None
    answer: str | None = None


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


class SurveyDispatcher:
    """Claims and calls due surveys for one process (`node`)."""

    def __init__(
        self,
        session_factory: sessionmaker[Session],
        caller: SurveyCaller,
        settings: SurveyRunSettings,
        *,
        clock: Callable[[], datetime] = utcnow,
        publish: Publish | None = None,
    ) -> None:
        self.session_factory = session_factory
        self.caller = caller
        self.settings = settings
        self.schedule = settings.schedule
        self.ivr = settings.ivr
        self.node = settings.node
        self.clock = clock
        self.publish = publish
        self.lease = timedelta(seconds=settings.lease_s)
        self._tasks: dict[str, asyncio.Task[None]] = {}

    @property
    def in_flight(self) -> int:
        """Calls this process is placing now."""
        return len(self._tasks)

    async def tick(self) -> int:
        """Claim due surveys into the free call slots and start their calls; returns how many."""
        now = self.clock()
        free = self.settings.max_concurrent - len(self._tasks)
        if free <= 0 or not self.schedule.hours.contains(now):
            return 0
        claimed = await asyncio.to_thread(self._claim, now, free)
        for survey in claimed:
            task = asyncio.create_task(self._run(survey), name=f"survey-{survey.id}")
            self._tasks[survey.id] = task
            task.add_done_callback(partial(self._forget, survey.id))
        return len(claimed)

    def _forget(self, survey_id: str, _task: asyncio.Task[None]) -> None:
        self._tasks.pop(survey_id, None)

    async def run_once(self) -> int:
        """`tick`, then wait until every call it started has been stored (tests, CLI)."""
        count = await self.tick()
        await self.drain()
        return count

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

    def _claim(self, now: datetime, limit: int) -> list[repo.ClaimedSurvey]:
        with session_scope(self.session_factory) as session:
            return repo.claim_due(session, node=self.node, now=now, lease=self.lease, limit=limit)

    async def _run(self, survey: repo.ClaimedSurvey) -> None:
        log.info(
            "survey %s: attempt %d to %s", survey.id, survey.attempt_no, mask_number(survey.number)
        )
        call = asyncio.create_task(self.caller.call(survey.id, survey.number, self.ivr))
        renew_every = self.settings.lease_s / 3
        started = self.clock()
        while True:
            done, _ = await asyncio.wait({call}, timeout=renew_every)
            if done:
                break
            await asyncio.to_thread(self._renew, survey.id)
        try:
            result = call.result()
        except Exception as exc:
            log.exception("survey %s: the caller failed", survey.id)
            now = self.clock()
            result = SurveyCallResult(
                CallOutcome.FAILED, None, "", started, now, None, type(exc).__name__
            )
        info = await asyncio.to_thread(self._store, survey, result)
        if self.publish is not None and info is not None:
            self.publish(
                "survey.attempt",
                {
                    "survey_id": survey.id,
                    "outcome": result.outcome.value,
                    "status": info.status.value,
                },
            )

    def _renew(self, survey_id: str) -> None:
        with session_scope(self.session_factory) as session:
            until = self.clock() + self.lease
            if not repo.renew_leases(session, node=self.node, survey_ids=[survey_id], until=until):
                log.warning("survey %s: lease lost while calling", survey_id)

    def _store(
        self, survey: repo.ClaimedSurvey, result: SurveyCallResult
    ) -> repo.SurveyInfo | None:
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
                session, survey.id, node=self.node, attempt_no=survey.attempt_no, values=values
            )
            if not owned:
                return None
            now = self.clock()
            records = [AttemptRecord(CallOutcome(o), at) for o, at in history]
            plan = plan_next(now, records, self.schedule)
            return self._apply(session, survey.id, plan, values, result.answer, now)

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


class SurveyDispatcherComponent:
    """A service component: the dispatcher's `tick` as the interval job `surveys.dispatch` on the
    service's one scheduler (`register`), and its calls cancelled on stop."""

    name = "surveys"

    def __init__(self, dispatcher: SurveyDispatcher) -> None:
        self.dispatcher = dispatcher
        self._last_error: str | None = None

    def register(self, add_interval_job: Callable[..., None]) -> None:
        """Add the dispatch job through the scheduler's `add_interval_job`."""
        add_interval_job(
            self.tick,
            seconds=self.dispatcher.settings.poll_s,
            job_id=DISPATCH_JOB_ID,
            name="callback survey dispatcher",
        )

    async def tick(self) -> None:
        """One dispatch round; a failure is logged and shown in health, the next tick retries."""
        try:
            await self.dispatcher.tick()
            self._last_error = None
        except Exception as exc:  # the database may be briefly unreachable: log, try next tick
            log.exception("survey dispatch failed")
            self._last_error = f"{type(exc).__name__}: {exc}"

    async def start(self) -> None:
        """Nothing to start: the scheduler runs the job."""

    async def stop(self) -> None:
        """Cancel calls in flight (their leases expire and they are called again)."""
        await self.dispatcher.cancel_all()

    def health(self) -> Health:
        """Healthy unless the last dispatch failed."""
        if self._last_error:
            return Health(False, self._last_error)
        return Health(True, f"{self.dispatcher.in_flight} calls in flight")

    def describe(self) -> dict[str, Any]:
        """What the dispatcher is configured with (no numbers)."""
        return {"node": self.dispatcher.node, "poll_s": self.dispatcher.settings.poll_s}
