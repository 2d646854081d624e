"""The survey key through SIP INFO (application/dtmf-relay, sent by a SIPp answerer) and as
in-band tones (a SIPp answerer agreeing PCMU only and streaming the DTMF tone pair): each is
stored as the answer, with its call row and recording (issue 7)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from lab.sipp import Sipp
from tests.surveys_lab.conftest import (
    SurveyLab,
    TrunkLab,
    sipp_inband_answerer,
    sipp_info_answerer,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]

MEANING = {"1": "satisfied", "2": "basically_satisfied", "3": "unsatisfied"}
NUMBER = "13812345678"


def _check(lab: SurveyLab, survey: dict[str, Any], key: str) -> None:
    assert survey["status"] == "answered", survey
    assert (survey["answer_key"], survey["answer"]) == (key, MEANING[key])
    (attempt,) = survey["attempt_log"]
    assert (attempt["outcome"], attempt["key"], attempt["digits"]) == ("answer", key, key)
    call = lab.call(attempt["recording_id"])
    assert (call["kind"], call["end_reason"]) == ("callback", "answer")
    rec = lab.recording(attempt["recording_id"])
    assert rec["error"] is None and rec["duration_s"] > 1.0, rec


@pytest.mark.parametrize("key", ["2", "3"])
def test_key_by_sip_info_is_stored(trunk_lab: TrunkLab, tmp_path: Path, key: str) -> None:
    sipp: Sipp = sipp_info_answerer(tmp_path / "sipp", key)
    lab = trunk_lab(sipp)
    sid = lab.create_survey(NUMBER)
    _check(lab, lab.wait_finished(sid, 40), key)
    messages = "".join(p.read_text() for p in (tmp_path / "sipp").glob("*_messages.log"))
    assert f"Signal={key}" in messages  # the key really went as SIP INFO


@pytest.mark.parametrize("key", ["1", "3"])
def test_key_as_inband_tones_is_stored(trunk_lab: TrunkLab, tmp_path: Path, key: str) -> None:
    lab = trunk_lab(sipp_inband_answerer(tmp_path / "sipp", key))
    sid = lab.create_survey(NUMBER)
    _check(lab, lab.wait_finished(sid, 40), key)
