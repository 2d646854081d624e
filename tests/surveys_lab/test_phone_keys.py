"""A baresip phone answers the callback survey and presses a key by RFC 4733 (issue 7): the
answer and its meaning, the attempt, a `callback` call row and its finalised recording are
stored; a wrong key first, then a right one, stores the right one."""

from __future__ import annotations

import time
from typing import Any

import pytest

from lab.baresip import BaresipPhone
from tests.surveys_lab.conftest import SurveyLab

pytestmark = [pytest.mark.integration, pytest.mark.slow]

MEANING = {"1": "satisfied", "2": "basically_satisfied", "3": "unsatisfied"}


def _survey_pressing(lab: SurveyLab, phone: BaresipPhone, number: str, keys: str) -> str:
    """Schedule a survey to `number`; when the phone rings (auto answer), press `keys`."""
    since = phone.event_count()
    survey_id = lab.create_survey(number)
    phone.wait_established(20, since)
    time.sleep(1.5)  # into the question prompt
    for key in keys:
        phone.send_dtmf(key)
        time.sleep(1.0)
    return survey_id


def _check_answered(lab: SurveyLab, survey: dict[str, Any], key: str, digits: str) -> None:
    assert survey["status"] == "answered", survey
    assert (survey["answer_key"], survey["answer"]) == (key, MEANING[key])
    assert survey["attempts"] == 1
    (attempt,) = survey["attempt_log"]
    assert (attempt["outcome"], attempt["key"], attempt["digits"]) == ("answer", key, digits)
    call_id = attempt["recording_id"]
    assert call_id and survey["recording_id"] == call_id
    call = lab.call(call_id)
    assert (call["kind"], call["state"], call["end_reason"]) == ("callback", "ended", "answer")
    assert call["connected_at"] is not None
    rec = lab.recording(call_id)
    assert rec["call_id"] == call_id and rec["error"] is None, rec
    assert rec["duration_s"] and rec["duration_s"] > 1.0, rec


@pytest.mark.parametrize("key", ["1", "2", "3"])
def test_phone_presses_key_by_rfc4733_and_the_answer_is_stored(
    phone_lab: SurveyLab, key: str
) -> None:
    phone = phone_lab.phone("2008", tone_hz=500.0)
    sid = _survey_pressing(phone_lab, phone, "2008", key)
    survey = phone_lab.wait_finished(sid, 40)
    _check_answered(phone_lab, survey, key, key)
    assert survey["end_reason"] is not None


def test_a_wrong_key_then_a_right_one_stores_the_right_one(phone_lab: SurveyLab) -> None:
    phone = phone_lab.phone("2009", tone_hz=500.0)
    sid = _survey_pressing(phone_lab, phone, "2009", "72")
    survey = phone_lab.wait_finished(sid, 60)
    _check_answered(phone_lab, survey, "2", "72")
