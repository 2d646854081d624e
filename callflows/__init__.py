"""Call logic as sans-IO state machines (events in, commands out), plus a fake runner.

The public surface is re-exported here; see docs/callflows.md for how a runner drives it.
"""

from callflows.bridge import BridgeFlow, BridgeSettings, BridgeSnapshot, BridgeState
from callflows.bridge_party import ExistingLeg, PartySnapshot, PartyState
from callflows.commands import Command, Flow
from callflows.dialing import Attempt
from callflows.duty_check import DutyCheckStatus, DutyCheckVerdict, duty_check_call, verdict
from callflows.errors import (
    CallflowConfigError,
    CallflowError,
    EventError,
    FlowFinishedError,
    IllegalTransitionError,
    PartyStateError,
    UnknownLegError,
)
from callflows.events import EndReason, Event, Role
from callflows.inbound import InboundFlow, InboundSettings, InboundSnapshot, NoAnswerOutcome
from callflows.ivr import CallOutcome, KeyPromptCall, KeyPromptResult, KeyPromptSettings
from callflows.survey import (
    AttemptRecord,
    CallingHours,
    RetryPolicy,
    SurveyPlan,
    SurveyProgress,
    SurveySchedule,
    first_attempt_at,
    plan_next,
    survey_call,
)

__all__ = [
    "Attempt",
    "AttemptRecord",
    "BridgeFlow",
    "BridgeSettings",
    "BridgeSnapshot",
    "BridgeState",
    "CallOutcome",
    "CallflowConfigError",
    "CallflowError",
    "CallingHours",
    "Command",
    "DutyCheckStatus",
    "DutyCheckVerdict",
    "EndReason",
    "Event",
    "EventError",
    "ExistingLeg",
    "Flow",
    "FlowFinishedError",
    "IllegalTransitionError",
    "InboundFlow",
    "InboundSettings",
    "InboundSnapshot",
    "KeyPromptCall",
    "KeyPromptResult",
    "KeyPromptSettings",
    "NoAnswerOutcome",
    "PartySnapshot",
    "PartyState",
    "PartyStateError",
    "RetryPolicy",
    "Role",
    "SurveyPlan",
    "SurveyProgress",
    "SurveySchedule",
    "UnknownLegError",
    "duty_check_call",
    "first_attempt_at",
    "plan_next",
    "survey_call",
    "verdict",
]
