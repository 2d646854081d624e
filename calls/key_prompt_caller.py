"""The dial-and-prompt plumbing of the real key-prompt callers (callback surveys, roster
reminders): one `KeyPromptCall` placed by `CallManager.run_key_prompt`, stored and recorded
like every call, reported as a `KeyPromptCallResult`.

The number goes through the call manager's dial form first (a refused number is a `failed`
outcome with the reason, never an exception); busy, no answer and no key are outcomes too.
Phone numbers are masked in every log line.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from sqlalchemy.orm import Session, sessionmaker

from callflows.ivr import CallOutcome, KeyPromptCall, KeyPromptResult, KeyPromptSettings
from calls.key_prompt_calls import KeyPromptCallResult, failed_call
from calls.manager import CallManager
from registry.numbers import NumberError
from storage.base import utcnow
from storage.engine import session_scope
from storage.models.call_records import CallKind, Recording
from telephony.privacy import mask_number

FlowFactory = Callable[[str, str, KeyPromptSettings], KeyPromptCall]
"""Builds the call's flow from (call id, dialled number, IVR settings)."""


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


class KeyPromptPlacer:
    """Places one key-prompt call of `kind` with the flow `flow` for a job's row; `label` and
    `log` (the job's caller module's logger) name it in the log lines."""

    def __init__(
        self,
        manager: CallManager,
        session_factory: sessionmaker[Session],
        *,
        kind: CallKind,
        flow: FlowFactory,
        label: str,
        log: logging.Logger,
    ) -> None:
        self.manager = manager
        self.session_factory = session_factory
        self.kind = kind
        self.flow = flow
        self.label = label
        self.log = log

    def _recording_of(self, call_id: str) -> str | None:
        with session_scope(self.session_factory) as session:
            rec = session.get(Recording, call_id)
            return rec.id if rec is not None else None

    async def place(
        self,
        item_id: str,
        number: str,
        ivr: KeyPromptSettings,
        *,
        unit_code: str | None = None,
        incident_of: Callable[[], str | None] | None = None,
    ) -> KeyPromptCallResult:
        """Call `number` for row `item_id` and report what happened. `incident_of` (run in a
        worker thread once the number is accepted) names the incident the call is stored with."""
        started = utcnow()
        try:
            target = self.manager.dial_form(number)
        except NumberError as exc:
            self.log.warning(
                "%s %s: number %s refused: %s", self.label, item_id, mask_number(number), exc
            )
            return failed_call(started, utcnow(), f"number refused: {exc}")
        incident_id = await asyncio.to_thread(incident_of) if incident_of is not None else None

        def make(call_id: str) -> KeyPromptCall:
            return self.flow(call_id, target, ivr)

        call_id, result = await self.manager.run_key_prompt(
            self.kind, make, target, incident_id=incident_id, unit_code=unit_code
        )
        outcome = result.outcome or CallOutcome.FAILED
        recording_id = await asyncio.to_thread(self._recording_of, call_id)
        self.log.info(
            "%s %s: call %s to %s ended %s (key %s)",
            self.label, item_id, call_id, mask_number(target), outcome.value, result.key or "-",
        )  # fmt: skip
        return KeyPromptCallResult(
            outcome=outcome,
            key=result.key,
            digits=digits_pressed(result),
            started_at=result.attempt.started_at if result.attempt else started,
            ended_at=result.ended_at or utcnow(),
            recording_id=recording_id,
            sip_reason=sip_reason(result),
            answer=result.answer,
        )
