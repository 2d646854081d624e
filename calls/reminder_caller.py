"""The real roster reminder caller: the `ReminderCaller` seam of calls/reminder_job.py on our
SIP user agent and media engine.

Each call is a `callflows.roster_reminder.reminder_call` (a `KeyPromptCall`) placed by
`CallManager.run_key_prompt(CallKind.REMINDER, ...)`, stored as a `reminder` call of the unit
and recorded like every call; busy, no answer and no key are outcomes, never exceptions.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging

from sqlalchemy.orm import Session, sessionmaker

from callflows.ivr import CallOutcome, KeyPromptCall, KeyPromptSettings
from callflows.roster_reminder import reminder_call
from calls.manager import CallManager
from calls.survey_caller import digits_pressed, sip_reason
from calls.survey_job import SurveyCallResult
from registry.numbers import NumberError
from storage.base import utcnow
from storage.engine import session_scope
from storage.models.call_records import CallKind, Recording
from telephony.privacy import mask_number

log = logging.getLogger(__name__)


class TelephonyReminderCaller:
    """勤务报备提醒 over SIP: ring the unit, play `reminder.prompt`, wait for key 1, thank.

    `ring_timeout_s` bounds the ringing (the service wires the unit ring timeout)."""

    def __init__(
        self, manager: CallManager, session_factory: sessionmaker[Session], *, ring_timeout_s: float
    ) -> None:
        self.manager = manager
        self.session_factory = session_factory
        self.ring_timeout_s = ring_timeout_s

    def _recording_of(self, call_id: str) -> str | None:
        with session_scope(self.session_factory) as session:
            rec = session.get(Recording, call_id)
            return rec.id if rec is not None else None

    async def call(
        self, reminder_id: str, unit_code: str, number: str, settings: KeyPromptSettings
    ) -> SurveyCallResult:
        """Place one reminder call and report what happened (a refused number is `failed`)."""
        started = utcnow()
        try:
            target = self.manager.dial_form(number)
        except NumberError as exc:
            log.warning("reminder %s: number %s refused: %s", reminder_id, mask_number(number), exc)
            return SurveyCallResult(
                CallOutcome.FAILED, None, "", started, utcnow(), None, f"number refused: {exc}"
            )
        ivr = dataclasses.replace(settings, ring_timeout_s=self.ring_timeout_s)

        def make(call_id: str) -> KeyPromptCall:
            return reminder_call(call_id, target, ivr)

        call_id, result = await self.manager.run_key_prompt(
            CallKind.REMINDER, make, target, unit_code=unit_code
        )
        outcome = result.outcome or CallOutcome.FAILED
        recording_id = await asyncio.to_thread(self._recording_of, call_id)
        log.info(
            "reminder %s: call %s to %s ended %s (key %s)",
            reminder_id, call_id, mask_number(target), outcome.value, result.key or "-",
        )  # fmt: skip
        return SurveyCallResult(
            outcome=outcome,
            key=result.key,
            digits=digits_pressed(result),
            started_at=result.attempt.started_at if result.attempt else started,
            ended_at=result.ended_at or utcnow(),
            recording_id=recording_id,
            sip_reason=sip_reason(result),
            answer=result.answer,
        )
