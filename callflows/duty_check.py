"""The duty check (查岗): call a unit's on-duty phone and ask for a key press.

The call is a `KeyPromptCall` ("查岗，请按1"): the check passes when '1' (configurable) is
pressed, and fails on no answer, busy, failure or no key (including a hang-up before any key).
The runner feeds the call like any flow and, once it is finished, turns its result into a
`DutyCheckVerdict` with `verdict()` and stores it for the unit.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime

from callflows.errors import CallflowConfigError
from callflows.ivr import CallOutcome, KeyPromptCall, KeyPromptResult, KeyPromptSettings


def default_duty_check_ivr() -> KeyPromptSettings:
    """The duty-check IVR as shipped: one prompt, key 1, one repeat, a short thank-you."""
    return KeyPromptSettings(
        prompt_key="duty_check.prompt",
        keys={"1": "present"},
        thanks_key="duty_check.thanks",
        key_timeout_s=10.0,
        max_repeats=1,
        ring_timeout_s=45.0,
        max_call_s=120.0,
    )


def duty_check_call(
    check_id: str, number: str, ivr: KeyPromptSettings | None = None
) -> KeyPromptCall:
    """The call of one duty check to the unit's current on-duty number."""
    return KeyPromptCall(check_id, number, ivr or default_duty_check_ivr(), role="duty")


class DutyCheckStatus(enum.StrEnum):
    """Pass or fail."""

    PASSED = "pass"
    FAILED = "fail"


@dataclass(frozen=True, slots=True)
class DutyCheckVerdict:
    """What is stored for the unit: pass/fail, why (the call outcome), number and times."""

    check_id: str
    number: str
    status: DutyCheckStatus
    reason: CallOutcome
    dialed_at: datetime | None
    answered_at: datetime | None
    key_at: datetime | None
    ended_at: datetime | None


def verdict(result: KeyPromptResult) -> DutyCheckVerdict:
    """Turn a finished duty-check call into pass (a valid key) or fail (anything else)."""
    if result.outcome is None:
        raise CallflowConfigError(f"duty check {result.flow_id} is not finished")
    passed = result.outcome is CallOutcome.ANSWER
    return DutyCheckVerdict(
        check_id=result.flow_id,
        number=result.number,
        status=DutyCheckStatus.PASSED if passed else DutyCheckStatus.FAILED,
        reason=result.outcome,
        dialed_at=result.attempt.started_at if result.attempt else None,
        answered_at=result.answered_at,
        key_at=result.key_at,
        ended_at=result.ended_at,
    )
