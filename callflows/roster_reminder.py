"""The roster reminder call (勤务报备提醒): ring the unit, say its roster is missing, ask for 1.

The call is a `KeyPromptCall` (callflows.ivr): key 1 means the unit acknowledged the reminder.
Retries follow the survey's schedule (callflows.survey.plan_next: calling hours, per-outcome
delays with back-off, a last attempt); `final_status` names how a finished reminder ended.
"""

from __future__ import annotations

from callflows.ivr import CallOutcome, KeyPromptCall, KeyPromptSettings
from callflows.survey import SurveyPlan, SurveyProgress

ACKNOWLEDGED = "acknowledged"

# how a reminder that ran out of attempts ended, by the outcome of its last call
_UNREACHED_STATUS = {
    CallOutcome.NO_KEY: "not_acknowledged",
    CallOutcome.NO_ANSWER: "no_answer",
    CallOutcome.BUSY: "busy",
    CallOutcome.FAILED: "failed",
}


def default_reminder_ivr() -> KeyPromptSettings:
    """您单位下周值班表尚未报备，请尽快登录系统报备。收到请按1 — then a short thank-you."""
    return KeyPromptSettings(
        prompt_key="reminder.prompt",
        keys={"1": ACKNOWLEDGED},
        thanks_key="reminder.thanks",
        key_timeout_s=8.0,
        max_repeats=1,
    )


def reminder_call(
    attempt_id: str, number: str, ivr: KeyPromptSettings | None = None
) -> KeyPromptCall:
    """The call of one reminder attempt to the unit's number."""
    return KeyPromptCall(attempt_id, number, ivr or default_reminder_ivr(), role="duty")


def final_status(plan: SurveyPlan, last_outcome: CallOutcome) -> str | None:
    """The reminder's final status after `plan` (None: it is called again): `acknowledged`,
    or after the last attempt `not_acknowledged` / `no_answer` / `busy` / `failed`."""
    if plan.status is SurveyProgress.SCHEDULED:
        return None
    if plan.status is SurveyProgress.ANSWERED:
        return ACKNOWLEDGED
    return _UNREACHED_STATUS.get(last_outcome, "failed")
