"""The real telephone call behind the duty-check seam: a prompt-and-key call placed by the call
manager (our UA + media engine), stored and recorded like every other call."""

from __future__ import annotations

import dataclasses
import logging

from callflows.duty_check import (
    DutyCheckStatus,
    DutyCheckVerdict,
    default_duty_check_ivr,
    duty_check_call,
    verdict,
)
from callflows.ivr import CallOutcome, KeyPromptCall
from calls.duty_check_job import DutyCheckCallResult
from calls.manager import CallManager
from registry.numbers import NumberError
from storage.models.call_records import CallKind
from storage.models.registry import DutyCheckOutcome

log = logging.getLogger(__name__)

_FAILED_OUTCOMES = {
    CallOutcome.NO_ANSWER: DutyCheckOutcome.NO_ANSWER,
    CallOutcome.NO_KEY: DutyCheckOutcome.NO_KEY,
    CallOutcome.BUSY: DutyCheckOutcome.BUSY,
    CallOutcome.FAILED: DutyCheckOutcome.FAILED,
}


def stored_outcome(v: DutyCheckVerdict) -> DutyCheckOutcome:
    """The outcome stored for the unit: passed, or the call outcome that made the check fail."""
    if v.status is DutyCheckStatus.PASSED:
        return DutyCheckOutcome.PASSED
    return _FAILED_OUTCOMES.get(v.reason, DutyCheckOutcome.FAILED)


class TelephonyDutyCheckCaller:
    """查岗 over SIP: ring the on-duty phone, play the `duty_check.prompt` prompt (请按1确认在岗),
    wait for key 1; `callflows.duty_check.verdict` decides pass or fail."""

    def __init__(self, manager: CallManager, *, ring_timeout_s: float) -> None:
        self.manager = manager
        self.ring_timeout_s = ring_timeout_s

    async def call(self, number: str, *, timeout_s: float) -> DutyCheckCallResult:
        try:
            target = self.manager.dial_form(number)
        except NumberError as exc:
            return DutyCheckCallResult(DutyCheckOutcome.FAILED, detail=f"number refused: {exc}")
        ring = min(timeout_s, self.ring_timeout_s)
        # the whole call fits in the job's deadline (ring + prompt + waiting for the key)
        ivr = dataclasses.replace(
            default_duty_check_ivr(), ring_timeout_s=ring, max_call_s=timeout_s + 10.0
        )

        def make(call_id: str) -> KeyPromptCall:
            return duty_check_call(call_id, target, ivr)

        call_id, result = await self.manager.run_key_prompt(CallKind.DUTY_CHECK, make, target)
        outcome = stored_outcome(verdict(result))
        return DutyCheckCallResult(outcome, key=result.key, detail=f"call {call_id}")
