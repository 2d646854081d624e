"""The real roster reminder caller: the `ReminderCaller` seam of calls/reminder_job.py on our
SIP user agent and media engine.

Each call is a `callflows.roster_reminder.reminder_call` (a `KeyPromptCall`) placed by
`CallManager.run_key_prompt(CallKind.REMINDER, ...)`, stored as a `reminder` call of the unit
and recorded like every call; busy, no answer and no key are outcomes, never exceptions.
"""

from __future__ import annotations

import dataclasses
import logging

from sqlalchemy.orm import Session, sessionmaker

from callflows.ivr import KeyPromptSettings
from callflows.roster_reminder import reminder_call
from calls.key_prompt_caller import KeyPromptPlacer
from calls.key_prompt_calls import KeyPromptCallResult
from calls.manager import CallManager
from storage.models.call_records import CallKind

log = logging.getLogger(__name__)


class TelephonyReminderCaller:
    """勤务报备提醒 over SIP: ring the unit, play `reminder.prompt`, wait for key 1, thank.

    `ring_timeout_s` bounds the ringing (the service wires the unit ring timeout). The call is
    placed by the key-prompt callers' shared `KeyPromptPlacer` (calls/key_prompt_caller.py)."""

    def __init__(
        self, manager: CallManager, session_factory: sessionmaker[Session], *, ring_timeout_s: float
    ) -> None:
        self.ring_timeout_s = ring_timeout_s
        self._placer = KeyPromptPlacer(
            manager, session_factory, kind=CallKind.REMINDER, flow=reminder_call,
            label="reminder", log=log,
        )  # fmt: skip

    async def call(
        self, reminder_id: str, unit_code: str, number: str, settings: KeyPromptSettings
    ) -> KeyPromptCallResult:
        """Place one reminder call and report what happened (a refused number is `failed`)."""
        ivr = dataclasses.replace(settings, ring_timeout_s=self.ring_timeout_s)
        return await self._placer.place(reminder_id, number, ivr, unit_code=unit_code)
