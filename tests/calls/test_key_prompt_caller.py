"""The key-prompt callers' shared placer (calls/key_prompt_caller.py) through the survey and
reminder callers, with the call manager faked at its telephony seam: the real IVR flow runs on
the in-memory runner against a scripted phone; the database is real (SQLite and PostgreSQL).
A refused number is a failed outcome and nothing is dialled; what the person pressed, how the
leg ended and which incident or unit the call belongs to reach the result; no full number is
logged."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy.orm import Session, sessionmaker

from callflows.ivr import CallOutcome, KeyPromptCall, KeyPromptResult
from callflows.roster_reminder import default_reminder_ivr
from callflows.survey import default_survey_ivr
from callflows.testing import FakeRunner, PeerScript
from calls.reminder_caller import TelephonyReminderCaller
from calls.survey_caller import TelephonySurveyCaller
from registry.numbers import DialPolicy
from storage import surveys
from storage.engine import make_engine, make_session_factory, session_scope
from storage.models.call_records import CallKind

T0 = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)
NUMBER = "+8613812345678"


@dataclass
class Manager:
    """The call manager's surface the placer uses: the real dial policy, and each call's flow
    run on the in-memory runner against `phones`."""

    phones: dict[str, PeerScript]
    placed: list[tuple[CallKind, str, dict[str, Any]]] = field(default_factory=list)
    policy: DialPolicy = field(default_factory=DialPolicy)

    def dial_form(self, number: str) -> str:
        return self.policy.check(number).dial

    async def run_key_prompt(
        self, kind: CallKind, make_flow: Callable[[str], KeyPromptCall], number: str,
        **context: Any,
    ) -> tuple[str, KeyPromptResult]:  # fmt: skip
        call_id = f"call-{len(self.placed) + 1}"
        self.placed.append((kind, number, context))
        flow = make_flow(call_id)
        runner = FakeRunner(flow, self.phones, T0)
        runner.begin()
        runner.run(until_s=300)
        return call_id, flow.result()


@pytest.fixture
def factory(migrated_url: str) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(migrated_url)
    yield make_session_factory(engine)
    engine.dispose()


async def test_a_reminder_reports_every_key_pressed_and_the_unit_of_the_call(
    factory: sessionmaker[Session], caplog: pytest.LogCaptureFixture
) -> None:
    manager = Manager({NUMBER: PeerScript(after_s=2, keys=((4.0, "7"), (6.0, "1")))})
    caller = TelephonyReminderCaller(manager, factory, ring_timeout_s=25)  # type: ignore[arg-type]
    with caplog.at_level(logging.INFO, logger="calls.reminder_caller"):
        result = await caller.call("r-1", "U01", NUMBER, default_reminder_ivr())
    assert (result.outcome, result.key, result.digits) == (CallOutcome.ANSWER, "1", "71")
    assert result.answer == "acknowledged" and result.recording_id is None
    assert result.started_at == T0 and result.ended_at > result.started_at
    assert manager.placed == [
        (CallKind.REMINDER, NUMBER, {"incident_id": None, "unit_code": "U01"})
    ]
    assert "reminder r-1: call call-1 to" in caplog.text and "ended answer (key 1)" in caplog.text
    assert NUMBER not in caplog.text


async def test_a_busy_survey_call_names_the_sip_status_and_its_incident(
    factory: sessionmaker[Session],
) -> None:
    with session_scope(factory) as s:
        sid = surveys.create_survey(s, number=NUMBER, first_attempt_at=T0).id
    manager = Manager({NUMBER: PeerScript(answer="busy", after_s=1)})
    caller = TelephonySurveyCaller(manager, factory, ring_timeout_s=30)  # type: ignore[arg-type]
    result = await caller.call(sid, NUMBER, default_survey_ivr())
    assert (result.outcome, result.key, result.sip_reason) == (
        CallOutcome.BUSY, None, "busy (486)",
    )  # fmt: skip
    assert manager.placed == [(CallKind.CALLBACK, NUMBER, {"incident_id": None, "unit_code": None})]


@pytest.mark.parametrize("number", ["+12025550123", "110"])
async def test_a_refused_number_fails_without_dialling_and_is_logged_masked(
    factory: sessionmaker[Session], caplog: pytest.LogCaptureFixture, number: str
) -> None:
    manager = Manager({})
    caller = TelephonySurveyCaller(manager, factory)  # type: ignore[arg-type]
    with caplog.at_level(logging.WARNING, logger="calls.survey_caller"):
        result = await caller.call("s-9", number, default_survey_ivr())
    assert result.outcome is CallOutcome.FAILED and manager.placed == []
    assert (result.sip_reason or "").startswith("number refused: ")
    assert "survey s-9: number" in caplog.text and "refused" in caplog.text
    assert number not in caplog.text
