"""The real callback-survey caller: the `SurveyCaller` seam of calls/survey_job.py on our SIP
user agent and media engine.

Each call is a `callflows.survey.survey_call` (a `KeyPromptCall`) placed by
`CallManager.run_key_prompt(CallKind.CALLBACK, ...)`: it is stored as a `callback` call, its
solo leg recorded (the recording's id is the call's id), the prompt played, one key collected
(RFC 4733, SIP INFO application/dtmf-relay or in-band tones: whatever the media engine and UA
deliver) and the thanks played. Busy, no answer and no key are outcomes, never exceptions.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging

from sqlalchemy.orm import Session, sessionmaker

from callflows.ivr import CallOutcome, KeyPromptCall, KeyPromptResult, KeyPromptSettings
from callflows.survey import survey_call
from calls.manager import CallManager
from calls.survey_job import SurveyCallResult
from registry.numbers import NumberError
from storage import surveys as survey_repo
from storage.base import utcnow
from storage.engine import session_scope
from storage.errors import NotFound
from storage.models.call_records import CallKind, Recording
from telephony.privacy import mask_number

log = logging.getLogger(__name__)


def digits_pressed(result: KeyPromptResult) -> str:
    """Every digit the person pressed, in order: the refused ones, then the accepted key.

    A `KeyPromptCall` stops collecting at the first accepted key, so the accepted key (if
    any) is the last digit pressed.
    """
    return "".join(result.invalid_keys) + (result.key or "")


def sip_reason(result: KeyPromptResult) -> str | None:
    """How the dialled leg ended, as the dialer saw it: `busy (486)`, `no_answer`, …"""
    att = result.attempt
    if att is None or att.result is None:
        return None
    return f"{att.result} ({att.sip_status})" if att.sip_status else att.result


class TelephonySurveyCaller:
    """回访 over SIP: ring the reporter, play the survey question, collect one key, thank.

    `ring_timeout_s` (default: the IVR settings' own) bounds the ringing; the service wires
    it to `Settings.ring_timeout_caller_s`, the ring timeout for citizens.
    """

    def __init__(
        self,
        manager: CallManager,
        session_factory: sessionmaker[Session],
        *,
        ring_timeout_s: float | None = None,
    ) -> None:
        self.manager = manager
        self.session_factory = session_factory
        self.ring_timeout_s = ring_timeout_s

    def _incident_of(self, survey_id: str) -> str | None:
        with session_scope(self.session_factory) as session:
            try:
                return survey_repo.get_survey(session, survey_id).incident_id
            except NotFound:
                return None

    def _recording_of(self, call_id: str) -> str | None:
        with session_scope(self.session_factory) as session:
            rec = session.get(Recording, call_id)
            return rec.id if rec is not None else None

    async def call(
        self, survey_id: str, number: str, settings: KeyPromptSettings
    ) -> SurveyCallResult:
        """Place one survey call to `number` and report what happened (never raises for
        busy / no answer / no key; a refused number is a `failed` outcome)."""
        started = utcnow()
        try:
            target = self.manager.dial_form(number)
        except NumberError as exc:
            log.warning("survey %s: number %s refused: %s", survey_id, mask_number(number), exc)
            return SurveyCallResult(
                CallOutcome.FAILED, None, "", started, utcnow(), None, f"number refused: {exc}"
            )
        ivr = settings
        if self.ring_timeout_s is not None:
            ivr = dataclasses.replace(settings, ring_timeout_s=self.ring_timeout_s)
        incident_id = await asyncio.to_thread(self._incident_of, survey_id)

        def make(call_id: str) -> KeyPromptCall:
            return survey_call(call_id, target, ivr)

        call_id, result = await self.manager.run_key_prompt(
            CallKind.CALLBACK, make, target, incident_id=incident_id
        )
        outcome = result.outcome or CallOutcome.FAILED
        recording_id = await asyncio.to_thread(self._recording_of, call_id)
        log.info(
            "survey %s: call %s to %s ended %s (key %s)",
            survey_id, call_id, mask_number(target), outcome.value, result.key or "-",
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
