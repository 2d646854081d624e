"""The real callback-survey caller: the `SurveyCaller` seam of calls/survey_job.py on our SIP
user agent and media engine.

Each call is a `callflows.survey.survey_call` (a `KeyPromptCall`) placed by
`CallManager.run_key_prompt(CallKind.CALLBACK, ...)`: it is stored as a `callback` call, its
solo leg recorded (the recording's id is the call's id), the prompt played, one key collected
(RFC 4733, SIP INFO application/dtmf-relay or in-band tones: whatever the media engine and UA
deliver) and the thanks played. Busy, no answer and no key are outcomes, never exceptions.
The dial-and-prompt plumbing is shared with the reminder caller (calls/key_prompt_caller.py).
"""

from __future__ import annotations

import dataclasses
import logging

from sqlalchemy.orm import Session, sessionmaker

from callflows.ivr import KeyPromptSettings
from callflows.survey import survey_call
from calls.key_prompt_caller import KeyPromptPlacer
from calls.manager import CallManager
from calls.survey_job import SurveyCallResult
from storage import surveys as survey_repo
from storage.engine import session_scope
from storage.errors import NotFound
from storage.models.call_records import CallKind

log = logging.getLogger(__name__)


class TelephonySurveyCaller:
    """回访 over SIP: ring the reporter, play the survey question, collect one key, thank.

    `ring_timeout_s` (default: the IVR settings' own) bounds the ringing; the service wires
    it to `Settings.ring_timeout_caller_s`, the ring timeout for citizens. The call is placed
    by the key-prompt callers' shared `KeyPromptPlacer` (calls/key_prompt_caller.py).
    """

    def __init__(
        self,
        manager: CallManager,
        session_factory: sessionmaker[Session],
        *,
        ring_timeout_s: float | None = None,
    ) -> None:
        self.session_factory = session_factory
        self.ring_timeout_s = ring_timeout_s
        self._placer = KeyPromptPlacer(
            manager, session_factory, kind=CallKind.CALLBACK, flow=survey_call, label="survey",
            log=log,
        )  # fmt: skip

    def _incident_of(self, survey_id: str) -> str | None:
        with session_scope(self.session_factory) as session:
            try:
                return survey_repo.get_survey(session, survey_id).incident_id
            except NotFound:
                return None

    async def call(
        self, survey_id: str, number: str, settings: KeyPromptSettings
    ) -> SurveyCallResult:
        """Place one survey call to `number` and report what happened (never raises for
        busy / no answer / no key; a refused number is a `failed` outcome)."""
        ivr = settings
        if self.ring_timeout_s is not None:
            ivr = dataclasses.replace(settings, ring_timeout_s=self.ring_timeout_s)
        return await self._placer.place(
            survey_id, number, ivr, incident_of=lambda: self._incident_of(survey_id)
        )
