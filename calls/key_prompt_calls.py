"""What the key-prompt call jobs (callback surveys, roster reminders) share between the call
and the database: the result of one call, the attempt stored from it, and the next step that
callflows.survey.plan_next decides from the row's attempts (retry at a time, or final).

`KeyPromptWork` is their common part of a `ClaimedWork` (calls/claimed_work.py): claim inside
the calling hours, renew the lease (storage/claims.py), store a caller that raised or a call
interrupted by shutdown as a failed attempt (its reason says which), and store an attempt with
its next step. Each job adds how it calls and what a final step stores.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Generic, Protocol, TypeVar

from sqlalchemy.orm import Session

from callflows.ivr import CallOutcome
from callflows.survey import AttemptRecord, SurveyPlan, SurveySchedule, plan_next
from calls.claimed_work import INTERRUPTED, ClaimedItem
from storage.attempts import AttemptValues, History
from storage.claims import LeaseTable


@dataclass(frozen=True, slots=True)
class KeyPromptCallResult:
    """What one key-prompt call observed. `key` is the accepted key (None: none) and `answer`
    its meaning as the IVR flow decided it (the one place keys get a meaning), `digits` every
    digit pressed in order (wrong ones too), `sip_reason` the end reason or SIP status text."""

    outcome: CallOutcome
    key: str | None
    digits: str
    started_at: datetime
    ended_at: datetime
    recording_id: str | None = None
    sip_reason: str | None = None
    answer: str | None = None

    def attempt(self) -> AttemptValues:
        """The attempt to store (a key only with an answered call)."""
        return AttemptValues(
            outcome=self.outcome.value,
            key=self.key if self.outcome is CallOutcome.ANSWER else None,
            digits=self.digits,
            started_at=self.started_at,
            ended_at=self.ended_at,
            recording_id=self.recording_id,
            sip_reason=self.sip_reason,
        )


def failed_call(started: datetime, ended: datetime, reason: str) -> KeyPromptCallResult:
    """A call that failed before or while dialling (a refused number, a caller that raised)."""
    return KeyPromptCallResult(CallOutcome.FAILED, None, "", started, ended, None, reason)


RecordAttempt = Callable[..., tuple[bool, History]]
"""A repository's `record_attempt(session, row_id, *, node, attempt_no, values)`."""


class KeyPromptRun(Protocol):
    """What the key-prompt jobs read of their run settings."""

    @property
    def node(self) -> str: ...
    @property
    def schedule(self) -> SurveySchedule: ...


ItemT = TypeVar("ItemT", bound=ClaimedItem)


class KeyPromptWork(Generic[ItemT]):
    """The part of a key-prompt job's `ClaimedWork` that surveys and reminders share. A
    subclass names itself (`label`, `log`: its module's logger) and adds `place` and `store`."""

    label: str
    log: logging.Logger

    def __init__(
        self,
        table: LeaseTable[Any],
        claim_due: Callable[..., list[ItemT]],
        record_attempt: RecordAttempt,
        settings: KeyPromptRun,
        clock: Callable[[], datetime],
    ) -> None:
        self.table = table
        self.claim_due = claim_due
        self.record_attempt = record_attempt
        self.node = settings.node
        self.schedule = settings.schedule
        self.clock = clock

    def may_claim(self, now: datetime) -> bool:
        """Inside the calling hours."""
        return self.schedule.hours.contains(now)

    def claim(
        self, session: Session, *, now: datetime, lease: timedelta, limit: int
    ) -> list[ItemT]:
        """Due rows: the repository's `claim_due`."""
        return self.claim_due(session, node=self.node, now=now, lease=lease, limit=limit)

    def renew(self, session: Session, item: ItemT, until: datetime) -> None:
        """Extend the row's lease; a lost lease is logged."""
        if not self.table.renew(session, node=self.node, ids=[item.id], until=until):
            self.log.warning("%s %s: lease lost while calling", self.label, item.id)

    def failed(self, item: ItemT, exc: Exception, started: datetime) -> KeyPromptCallResult:
        """The caller raised `exc` (in the `except` block): logged with the traceback, stored as
        a failed attempt named after the exception."""
        self.log.exception("%s %s: the caller failed", self.label, item.id)
        return failed_call(started, self.clock(), type(exc).__name__)

    def interrupted(self, item: ItemT, started: datetime) -> KeyPromptCallResult:
        """The call was cancelled (shutdown): a failed attempt whose reason says so. It does not
        use up an attempt: the number is called again as soon as the hours allow, by any node
        (callflows.survey.plan_next)."""
        self.log.warning("%s %s: call interrupted by shutdown", self.label, item.id)
        return failed_call(started, self.clock(), INTERRUPTED)

    def record(
        self, session: Session, row_id: str, attempt_no: int, values: AttemptValues
    ) -> tuple[SurveyPlan, datetime] | None:
        """Store the attempt; the next step and the time it was decided, or None when the
        lease was lost (the attempt is kept, the row is not changed)."""
        owned, history = self.record_attempt(
            session, row_id, node=self.node, attempt_no=attempt_no, values=values
        )
        if not owned:
            return None
        now = self.clock()
        records = [AttemptRecord(CallOutcome(o), at, why == INTERRUPTED) for o, at, why in history]
        return plan_next(now, records, self.schedule), now
