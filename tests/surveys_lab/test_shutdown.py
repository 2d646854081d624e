"""The service stops while a callback survey call is up on a real phone (baresip via
Kamailio): the phone's call is ended, and the survey stores why its attempt ended
(`interrupted (shutdown)`), is pending again and holds no lease, so any node calls the
number again at the retry time; the call itself is stored ended `shutdown` by the stopping
process. A survey caller whose wait is cancelled (shutdown, a deadline) hangs the phone up at
once instead of leaving the IVR running, and the call is stored ended `cancelled`."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta

import pytest
from sqlalchemy import select

from calls.claimed_work import INTERRUPTED
from calls.survey_caller import TelephonySurveyCaller
from storage.engine import make_engine, make_session_factory, session_scope
from storage.models.call_records import Call
from storage.models.surveys import Survey, SurveyStatus
from tests.surveys_lab.conftest import SurveyLab

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_stopping_the_service_ends_the_survey_call_and_stores_it_interrupted(
    phone_lab: SurveyLab,
) -> None:
    phone = phone_lab.phone("2008", tone_hz=500.0)  # answers, never presses a key
    since = phone.event_count()
    sid = phone_lab.create_survey("2008")
    phone.wait_established(20, since)
    settings = phone_lab.live.app.state.service.settings  # type: ignore[attr-defined]
    url = settings.resolved_database_url

    began = time.monotonic()
    phone_lab.live.stop()
    stopped_s = time.monotonic() - began
    phone.wait_event("CALL_CLOSED", 10, since)  # the phone is not left in the call

    engine = make_engine(url)
    try:
        with make_session_factory(engine)() as s:
            survey = s.scalars(select(Survey).where(Survey.id == sid)).one()
            attempts = [(a.outcome, a.sip_reason) for a in survey.attempt_rows]
            row = (survey.status, survey.claimed_by, survey.claimed_until)
            cut_at, next_at = survey.attempt_rows[0].ended_at, survey.next_attempt_at
            calls = [(c.state.value, c.end_reason, c.interrupted) for c in s.scalars(select(Call))]
    finally:
        engine.dispose()
    assert attempts == [("failed", INTERRUPTED)]
    assert calls == [("ended", "shutdown", True)]
    assert row == (SurveyStatus.PENDING, None, None)
    # the cut call is not the person's attempt: called again as soon as the hours allow,
    # not after the failed attempt's back-off
    soonest = settings.survey_schedule().hours.next_opening(cut_at)
    assert soonest <= next_at <= soonest + timedelta(seconds=5), (cut_at, next_at)
    assert stopped_s < 30, stopped_s


def test_a_cancelled_survey_caller_hangs_the_phone_up_at_once(phone_lab: SurveyLab) -> None:
    phone = phone_lab.phone("2008", tone_hz=500.0)  # answers, never presses a key
    service = phone_lab.live.app.state.service  # type: ignore[attr-defined]
    caller = TelephonySurveyCaller(service.calls, service.session_factory)
    ivr = service.settings.survey_ivr()  # the prompt, then 3 x 8 s waiting for a key
    since = phone.event_count()
    waiting = asyncio.run_coroutine_threadsafe(caller.call("s1", "2008", ivr), service.loop)
    phone.wait_established(20, since)
    began = time.monotonic()
    waiting.cancel()  # cancels the caller's task on the service's loop
    phone.wait_event("CALL_CLOSED", 5, since)  # not after the IVR has run out of repeats
    assert time.monotonic() - began < 5

    def stored() -> list[tuple[str, str | None]]:
        with session_scope(service.session_factory) as s:
            return [(c.state.value, c.end_reason) for c in s.scalars(select(Call))]

    deadline = time.monotonic() + 5
    while stored() != [("ended", "cancelled")] and time.monotonic() < deadline:
        time.sleep(0.1)
    assert stored() == [("ended", "cancelled")]  # not left open until the next start
