"""No answer and busy on real peers (issue 7): each call ends with the right outcome, the
survey is called again after the configured retry delay, and after the last attempt it ends
"unreached". (The retry timing itself is covered with fake callers in tests/surveys/.)"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest

from tests.surveys_lab.conftest import BUSY_NUMBER, RETRY_S, SurveyLab

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _check_retried_then_unreached(
    lab: SurveyLab, survey: dict[str, Any], outcome: str, reason_part: str
) -> None:
    assert survey["status"] == "unreached", survey
    assert survey["attempts"] == 2 and survey["answer_key"] is None
    first, second = survey["attempt_log"]
    assert [first["outcome"], second["outcome"]] == [outcome, outcome]
    for attempt in (first, second):
        assert reason_part in (attempt["sip_reason"] or ""), attempt
        assert attempt["digits"] == "" and attempt["key"] is None
    gap = datetime.fromisoformat(second["started_at"]) - datetime.fromisoformat(first["ended_at"])
    # called again after the retry delay (plus at most a poll and some load), not at once
    assert timedelta(seconds=RETRY_S - 0.2) <= gap <= timedelta(seconds=RETRY_S + 8), gap
    calls = lab.get("/api/v1/calls", params={"kind": "callback"}).json()
    assert len(calls) == 2
    assert {c["state"] for c in calls} == {"failed"}
    assert {c["end_reason"] for c in calls} == {outcome}


def test_no_answer_is_retried_then_unreached(phone_lab: SurveyLab) -> None:
    phone = phone_lab.phone("2007", tone_hz=500.0, auto_answer=False)
    since = phone.event_count()
    sid = phone_lab.create_survey("2007")
    phone.wait_incoming(15, since)  # it really rang
    survey = phone_lab.wait_finished(sid, 60)
    _check_retried_then_unreached(phone_lab, survey, "no_answer", "no_answer")


def test_busy_is_retried_then_unreached(phone_lab: SurveyLab) -> None:
    sid = phone_lab.create_survey(BUSY_NUMBER)
    survey = phone_lab.wait_finished(sid, 60)
    _check_retried_then_unreached(phone_lab, survey, "busy", "486")
