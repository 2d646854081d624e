"""The real telephone calls behind the duty-check and survey seams: prompt-and-key calls placed
by the call manager (our UA + media engine), stored and recorded like every other call."""

from __future__ import annotations

import dataclasses
import logging

from api.calls import CallManager
from api.jobs.duty_check import CallResult
from api.numbers import NumberError
from callflows.duty_check import default_duty_check_ivr, duty_check_call
from callflows.ivr import CallOutcome, KeyPromptCall
from storage.models.calls import CallKind
from storage.models.registry import DutyCheckOutcome

log = logging.getLogger(__name__)

_DUTY_OUTCOMES = {
    CallOutcome.NO_ANSWER: DutyCheckOutcome.NO_ANSWER,
    CallOutcome.NO_KEY: DutyCheckOutcome.NO_KEY,
    CallOutcome.BUSY: DutyCheckOutcome.BUSY,
    CallOutcome.FAILED: DutyCheckOutcome.FAILED,
}


class TelephonyDutyCheckCaller:
    """查岗 over SIP: ring the on-duty phone, play the prompt, wait for key 1."""

    def __init__(self, manager: CallManager) -> None:
        self.manager = manager

    async def call(
        self, number: str, *, prompt: str, expect_key: str, timeout_s: float
    ) -> CallResult:
        try:
            target = self.manager.dial_form(number)
        except NumberError as exc:
            return CallResult(DutyCheckOutcome.FAILED, detail=f"number refused: {exc}")
        ring = min(timeout_s, self.manager.service.settings.duty_check_ring_timeout_s)
        # the whole call fits in the job's deadline (ring + prompt + waiting for the key)
        ivr = dataclasses.replace(
            default_duty_check_ivr(), ring_timeout_s=ring, max_call_s=timeout_s + 10.0
        )

        def make(call_id: str) -> KeyPromptCall:
            return duty_check_call(call_id, target, ivr)

        call_id, result = await self.manager.run_key_prompt(CallKind.DUTY_CHECK, make, target)
        if result.outcome is CallOutcome.ANSWER and result.key == expect_key:
            return CallResult(DutyCheckOutcome.PASSED, key=result.key, detail=f"call {call_id}")
        outcome = _DUTY_OUTCOMES.get(result.outcome or CallOutcome.FAILED, DutyCheckOutcome.FAILED)
        if result.outcome is CallOutcome.ANSWER:  # a key other than the expected one
            outcome = DutyCheckOutcome.NO_KEY
        return CallResult(outcome, key=result.key, detail=f"call {call_id}")
