"""The survey dispatcher job with a fake caller and a hand-moved clock, on both backends."""

from __future__ import annotations

import dataclasses
import json
from datetime import timedelta

from sqlalchemy.orm import Session, sessionmaker

from api.settings import Settings
from callflows.ivr import CallOutcome
from calls.survey_job import SurveyDispatcher, SurveyRunSettings
from storage import incidents as incident_repo
from storage import surveys as repo
from storage import webhooks
from storage.engine import session_scope
from storage.incidents import Actor
from storage.models.incidents import IncidentCategory, IncidentState
from storage.models.surveys import SurveyStatus
from tests.surveys.conftest import SHANGHAI, Clock, FakeCaller, local

NUMBER = "+8613812345678"
SETTINGS = dataclasses.replace(
    Settings(
        survey_hours="08:30-21:00",
        survey_max_attempts=3,
        survey_retry_no_answer_s=1800,
        survey_retry_busy_s=600,
        survey_backoff=2.0,
    ).survey_run_settings(),
    node="node-a",
)


def _dispatcher(factory: sessionmaker[Session], clock: Clock, caller: FakeCaller,
                settings: SurveyRunSettings = SETTINGS) -> SurveyDispatcher:  # fmt: skip
    return SurveyDispatcher(factory, caller, settings, clock=clock)


def _survey(factory: sessionmaker[Session], due: object, number: str = NUMBER,
            incident_id: str | None = None) -> str:  # fmt: skip
    with session_scope(factory) as s:
        return repo.create_survey(
            s,
            number=number,
            first_attempt_at=due,
            incident_id=incident_id,  # type: ignore[arg-type]
        ).id


def _get(factory: sessionmaker[Session], survey_id: str) -> repo.SurveyInfo:
    with session_scope(factory) as s:
        return repo.get_survey(s, survey_id)


async def test_no_answer_and_busy_are_retried_at_the_configured_times_then_unreached(
    factory: sessionmaker[Session],
) -> None:
    clock = Clock(local(2026, 12, 1, 9, 59))
    caller = FakeCaller(clock, {NUMBER: [(CallOutcome.NO_ANSWER, None, ""),
                                         (CallOutcome.BUSY, None, ""),
                                         (CallOutcome.NO_ANSWER, None, "")]})  # fmt: skip
    dispatcher = _dispatcher(factory, clock, caller)
    sid = _survey(factory, local(2026, 12, 1, 10, 0))

    assert await dispatcher.run_once() == 0  # not due yet
    clock.set(local(2026, 12, 1, 10, 0))
    assert await dispatcher.run_once() == 1
    first = _get(factory, sid)
    # no answer: 30 min after the call ended (10:00:30)
    assert first.status is SurveyStatus.PENDING
    assert first.next_attempt_at == local(2026, 12, 1, 10, 30, 30)

    clock.set(local(2026, 12, 1, 10, 30, 29))
    assert await dispatcher.run_once() == 0
    clock.set(local(2026, 12, 1, 10, 30, 30))
    assert await dispatcher.run_once() == 1
    # busy, second retry: 10 min x backoff 2 = 20 min after 10:31:00
    assert _get(factory, sid).next_attempt_at == local(2026, 12, 1, 10, 51, 0)

    clock.set(local(2026, 12, 1, 10, 51))
    assert await dispatcher.run_once() == 1
    done = _get(factory, sid)
    assert done.status is SurveyStatus.UNREACHED
    assert done.attempts == 3 and done.next_attempt_at is None
    assert [a.outcome for a in done.attempt_log] == ["no_answer", "busy", "no_answer"]
    assert [a.attempt_no for a in done.attempt_log] == [1, 2, 3]
    assert done.end_reason == "last_attempt:no_answer"
    clock.set(local(2026, 12, 2, 12, 0))
    assert await dispatcher.run_once() == 0  # never called again
    assert len(caller.calls) == 3


async def test_outside_calling_hours_the_retry_waits_for_the_window(
    factory: sessionmaker[Session],
) -> None:
    clock = Clock(local(2026, 12, 1, 20, 50))
    caller = FakeCaller(clock, {NUMBER: [(CallOutcome.NO_ANSWER, None, ""),
                                         (CallOutcome.ANSWER, "2", "2")]})  # fmt: skip
    dispatcher = _dispatcher(factory, clock, caller)
    sid = _survey(factory, local(2026, 12, 1, 20, 50))
    assert await dispatcher.run_once() == 1
    # 20:50:30 + 30 min = 21:20:30 is after hours: next opening 08:30 the next day
    pending = _get(factory, sid)
    assert pending.next_attempt_at == local(2026, 12, 2, 8, 30)
    for night in (local(2026, 12, 1, 23, 0), local(2026, 12, 2, 8, 29, 59)):
        clock.set(night)
        assert await dispatcher.run_once() == 0
    clock.set(local(2026, 12, 2, 8, 30))
    assert await dispatcher.run_once() == 1
    answered = _get(factory, sid)
    assert answered.status is SurveyStatus.ANSWERED
    assert (answered.answer_key, answered.answer) == ("2", "basically_satisfied")
    assert answered.answered_at is not None
    assert answered.answered_at.astimezone(SHANGHAI) == local(2026, 12, 2, 8, 30, 30)


async def test_a_due_survey_past_closing_time_waits_until_the_window_opens(
    factory: sessionmaker[Session],
) -> None:
    clock = Clock(local(2026, 12, 1, 21, 0))
    caller = FakeCaller(clock)
    dispatcher = _dispatcher(factory, clock, caller)
    _survey(factory, local(2026, 12, 1, 20, 0))  # due, but the window has closed
    assert await dispatcher.run_once() == 0
    clock.set(local(2026, 12, 2, 8, 30))
    assert await dispatcher.run_once() == 1


async def test_unsatisfied_answer_flags_the_incident_for_rework_and_marks_it_surveyed(
    factory: sessionmaker[Session],
) -> None:
    clock = Clock(local(2026, 12, 1, 10, 0))
    caller = FakeCaller(clock, {NUMBER: [(CallOutcome.ANSWER, "3", "93")]})
    actor = Actor("dispatcher", "dispatcher")
    with session_scope(factory) as s:
        inc = incident_repo.create_incident(
            s, reporter_number=NUMBER, category=IncidentCategory.NON_POLICE, type="utility",
            summary="停电", received_at=clock(), actor=actor,
        )  # fmt: skip
        incident_repo.transition(s, inc.id, IncidentState.CLOSED, actor=actor, feedback="ok")
    sid = _survey(factory, clock(), incident_id=inc.id)
    assert await _dispatcher(factory, clock, caller).run_once() == 1
    survey = _get(factory, sid)
    assert (survey.status, survey.answer) == (SurveyStatus.ANSWERED, "unsatisfied")
    assert survey.attempt_log[0].digits == "93"
    with session_scope(factory) as s:
        after = incident_repo.get_incident(s, inc.id)
        steps = incident_repo.timeline(s, inc.id)
    assert after.rework is True and after.state is IncidentState.SURVEYED
    assert "unsatisfied" in (after.rework_reason or "")
    assert steps[-1].to_state is IncidentState.SURVEYED and steps[-1].actor == "system"
    # the county's gateway is told, for rework: one survey.unsatisfied event in the outbox
    with session_scope(factory) as s:
        (event,) = webhooks.list_events(s)
    assert event.event == "survey.unsatisfied" and event.delivered_at is None
    body = json.loads(event.body)
    assert body["data"] == {
        "survey_id": sid, "incident_id": inc.id, "unit_code": None, "answer": "unsatisfied",
        "answer_key": "3", "answered_at": survey.answered_at.isoformat() if survey.answered_at
        else None,
    }  # fmt: skip


async def test_a_key_that_is_not_accepted_is_stored_as_no_key_and_retried(
    factory: sessionmaker[Session],
) -> None:
    clock = Clock(local(2026, 12, 1, 10, 0))
    caller = FakeCaller(clock, {NUMBER: [(CallOutcome.NO_KEY, None, "7")]})
    sid = _survey(factory, clock())
    await _dispatcher(factory, clock, caller).run_once()
    survey = _get(factory, sid)
    assert survey.status is SurveyStatus.PENDING and survey.answer is None
    assert survey.attempt_log[0].outcome == "no_key"
    assert survey.next_attempt_at == clock() + timedelta(seconds=30) + timedelta(hours=1)


async def test_one_number_is_never_called_twice_at_once(factory: sessionmaker[Session]) -> None:
    clock = Clock(local(2026, 12, 1, 10, 0))
    caller = FakeCaller(clock)
    dispatcher = _dispatcher(factory, clock, caller)
    first = _survey(factory, clock())
    second = _survey(factory, clock())
    other = _survey(factory, clock(), number="+8613900000001")
    assert await dispatcher.tick() == 2  # the second survey of NUMBER waits
    await dispatcher.drain()
    assert sorted(c[0] for c in caller.calls) == sorted([first, other]) or sorted(
        c[0] for c in caller.calls
    ) == sorted([second, other])
    assert await dispatcher.run_once() == 1
    assert {_get(factory, s).status for s in (first, second, other)} == {SurveyStatus.ANSWERED}


async def test_a_caller_that_raises_is_stored_as_a_failed_attempt(
    factory: sessionmaker[Session],
) -> None:
    clock = Clock(local(2026, 12, 1, 10, 0))

    class Broken(FakeCaller):
        async def call(self, survey_id, number, settings):  # type: ignore[no-untyped-def]
            raise ConnectionResetError("boom")

    sid = _survey(factory, clock())
    await _dispatcher(factory, clock, Broken(clock)).run_once()
    survey = _get(factory, sid)
    assert survey.status is SurveyStatus.PENDING
    assert (survey.attempt_log[0].outcome, survey.attempt_log[0].sip_reason) == (
        "failed",
        "ConnectionResetError",
    )


def test_an_expired_lease_is_claimed_by_another_node(factory: sessionmaker[Session]) -> None:
    now = local(2026, 12, 1, 10, 0)
    sid = _survey(factory, now)
    lease = timedelta(seconds=60)
    with session_scope(factory) as s:
        assert [c.id for c in repo.claim_due(s, node="a", now=now, lease=lease, limit=5)] == [sid]
    with session_scope(factory) as s:
        later = now + timedelta(seconds=59)
        assert repo.claim_due(s, node="b", now=later, lease=lease, limit=5) == []
    with session_scope(factory) as s:
        assert repo.renew_leases(s, node="b", survey_ids=[sid], until=now) == 0
    with session_scope(factory) as s:
        taken = repo.claim_due(s, node="b", now=now + lease, lease=lease, limit=5)
    assert [(c.id, c.attempt_no) for c in taken] == [(sid, 1)]
