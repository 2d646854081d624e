"""Callback surveys on the real telephony stack: a running linkcall service whose survey
dispatcher calls lab peers (baresip phones through Kamailio, SIPp answerers as a trunk).

The service under test is `create_app` served by uvicorn in a thread (tests/conftest.py
`run_live_app`); its survey settings come from LINKCALL_SURVEY_* variables set here before the
app is built: calling hours all day (county time, Asia/Shanghai), a fast poll, short retries.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from lab import ports
from lab.audio import make_tone_wav
from lab.baresip import BaresipPhone
from lab.kamailio import Kamailio
from lab.sipp import Sipp
from tests.conftest import LiveService, run_live_app, service_settings

BUSY_NUMBER = "3001"  # Kamailio routes 3xxx to a SIPp rejecter answering 486 Busy Here
RETRY_S = 3.0  # first retry after no answer / busy
FINISHED = ("answered", "unreached", "cancelled")
# DTMF (ITU-T Q.23): low group row, high group column
DTMF_FREQS = {
    "1": (697.0, 1209.0), "2": (697.0, 1336.0), "3": (697.0, 1477.0),
    "4": (770.0, 1209.0), "5": (770.0, 1336.0), "6": (770.0, 1477.0),
    "7": (852.0, 1209.0), "8": (852.0, 1336.0), "9": (852.0, 1477.0),
}  # fmt: skip

SURVEY_ENV = {
    "LINKCALL_SURVEY_HOURS": "00:00-23:59:59.999999",
    "LINKCALL_SURVEY_POLL_S": "0.5",
    "LINKCALL_SURVEY_MAX_ATTEMPTS": "2",
    "LINKCALL_SURVEY_RETRY_NO_ANSWER_S": str(RETRY_S),
    "LINKCALL_SURVEY_RETRY_BUSY_S": str(RETRY_S),
    "LINKCALL_SURVEY_RETRY_FAILED_S": str(RETRY_S),
    "LINKCALL_SURVEY_RETRY_NO_KEY_S": str(RETRY_S),
    "LINKCALL_SURVEY_BACKOFF": "1",
    "LINKCALL_SURVEY_LEASE_S": "60",
    "LINKCALL_SURVEY_MAX_CONCURRENT": "10",
}


@pytest.fixture
def survey_env(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """LINKCALL_SURVEY_* for a service that may call now and retries within seconds."""
    for key, value in SURVEY_ENV.items():
        monkeypatch.setenv(key, value)
    return dict(SURVEY_ENV)


@dataclass
class SurveyLab:
    """A service calling surveys, and an HTTP client on it."""

    live: LiveService
    http: httpx.Client
    kamailio: Kamailio | None = None
    phone_factory: Callable[..., BaresipPhone] | None = None

    def phone(self, user: str, **kw: Any) -> BaresipPhone:
        """A baresip phone registered to this lab's Kamailio."""
        assert self.phone_factory is not None and self.kamailio is not None
        return self.phone_factory(user, kamailio=self.kamailio, **kw)

    def get(self, path: str, role: str = "dispatcher", **kw: Any) -> httpx.Response:
        return self.http.get(path, headers=self.live.auth(role), **kw)

    def post(self, path: str, role: str = "dispatcher", **kw: Any) -> httpx.Response:
        return self.http.post(path, headers=self.live.auth(role), **kw)

    def create_survey(self, number: str) -> str:
        """POST /api/v1/surveys for `number`, due now; returns its id."""
        resp = self.post("/api/v1/surveys", json={"number": number})
        assert resp.status_code == 201, resp.text
        return str(resp.json()["id"])

    def survey(self, survey_id: str) -> dict[str, Any]:
        resp = self.get(f"/api/v1/surveys/{survey_id}")
        assert resp.status_code == 200, resp.text
        return resp.json()  # type: ignore[no-any-return]

    def wait_survey(
        self, survey_id: str, pred: Callable[[dict[str, Any]], bool], timeout: float = 60.0
    ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        body: dict[str, Any] = {}
        while time.monotonic() < deadline:
            body = self.survey(survey_id)
            if pred(body):
                return body
            time.sleep(0.3)
        raise AssertionError(f"survey never got there: {body}")

    def wait_finished(self, survey_id: str, timeout: float = 60.0) -> dict[str, Any]:
        return self.wait_survey(survey_id, lambda s: s["status"] in FINISHED, timeout)

    def call(self, call_id: str) -> dict[str, Any]:
        calls = self.get("/api/v1/calls", params={"kind": "callback", "limit": 500}).json()
        found: dict[str, Any] = next(c for c in calls if c["id"] == call_id)
        return found

    def recording(self, recording_id: str, timeout: float = 15.0) -> dict[str, Any]:
        """The recording's metadata once it is finalised."""
        deadline = time.monotonic() + timeout
        body: dict[str, Any] = {}
        while time.monotonic() < deadline:
            resp = self.get(f"/api/v1/recordings/{recording_id}")
            assert resp.status_code == 200, resp.text
            body = resp.json()
            if body["finalised_at"] is not None:
                return body
            time.sleep(0.2)
        raise AssertionError(f"recording never finalised: {body}")


def _wait_registered(kam: Kamailio, user: str) -> None:
    deadline = time.monotonic() + 15
    while not kam.registered(user):
        assert time.monotonic() < deadline, "service never registered"
        time.sleep(0.2)


@pytest.fixture
def phone_lab(
    tmp_path: Path,
    survey_env: dict[str, str],
    kamailio_factory: Callable[..., Kamailio],
    lab_users: dict[str, str],
    phone_factory: Callable[..., BaresipPhone],
) -> Iterator[SurveyLab]:
    """The service registered to Kamailio as 1000; 2xxx are phones, 3xxx a busy trunk."""
    sipp_port = ports.sip_port()
    rejecter = Sipp.rejecter(tmp_path / "busy", code=486, port=sipp_port, timeout_s=None)
    kam = kamailio_factory(trunk_regex="^3[0-9]{3}$", trunk_target=("127.0.0.1", sipp_port))
    rejecter.start()
    settings = service_settings(
        tmp_path,
        sip_registrar=f"127.0.0.1:{kam.udp_port}",
        sip_trunk_peer="",
        sip_user="1000",
        sip_password=lab_users["1000"],
        ring_timeout_caller_s=5.0,
    )
    try:
        with (
            run_live_app(settings) as live,
            httpx.Client(base_url=live.base_url, timeout=30) as http,
        ):
            _wait_registered(kam, "1000")
            yield SurveyLab(live, http, kam, phone_factory)
    finally:
        rejecter.stop()


TrunkLab = Callable[[Sipp], SurveyLab]


@pytest.fixture
def trunk_lab(tmp_path: Path, survey_env: dict[str, str]) -> Iterator[TrunkLab]:
    """`trunk_lab(sipp)`: start the SIPp answerer and a service in trunk mode dialling it."""
    stack: list[Any] = []

    def start(sipp: Sipp) -> SurveyLab:
        sipp.start()
        stack.append(sipp)
        settings = service_settings(
            tmp_path, sip_trunk_peer=f"127.0.0.1:{sipp.port}", ring_timeout_caller_s=5.0
        )
        live_cm = run_live_app(settings)
        live = live_cm.__enter__()
        stack.append(live_cm)
        http = httpx.Client(base_url=live.base_url, timeout=30)
        stack.append(http)
        return SurveyLab(live, http)

    yield start
    for item in reversed(stack):
        if isinstance(item, Sipp):
            item.stop()
        elif isinstance(item, httpx.Client):
            item.close()
        else:
            item.__exit__(None, None, None)


def sipp_info_answerer(workdir: Path, digit: str, delay_ms: int = 1500) -> Sipp:
    """A SIPp UAS answering every call and pressing `digit` by SIP INFO after `delay_ms`."""
    return Sipp(
        workdir, "uas_info_dtmf", {"DIGIT": digit, "INFO_DELAY_MS": str(delay_ms)},
        calls=None, timeout_s=None, extra_args=["-rtp_echo", "-trace_msg"],
    )  # fmt: skip


def dtmf_ulaw(path: Path, digit: str, lead_s: float = 2.0, tone_s: float = 0.3) -> Path:
    """Headerless u-law: `lead_s` of silence, the digit's tone pair, then 1.7 s of silence."""
    parts = [
        make_tone_wav(path.with_suffix(".lead.wav"), None, lead_s),
        make_tone_wav(path.with_suffix(".tone.wav"), list(DTMF_FREQS[digit]), tone_s, 8000, 0.25),
        make_tone_wav(path.with_suffix(".tail.wav"), None, 1.7),
    ]
    subprocess.run(
        ["sox", *map(str, parts), "-t", "raw", "-r", "8000", "-c", "1", "-e", "u-law", "-b", "8",
         str(path)],
        check=True, capture_output=True,
    )  # fmt: skip
    return path


def sipp_inband_answerer(workdir: Path, digit: str) -> Sipp:
    """A SIPp UAS offering PCMU only (no telephone-event) and playing `digit` as tones."""
    workdir.mkdir(parents=True, exist_ok=True)
    ulaw = dtmf_ulaw(workdir / f"dtmf-{digit}.ulaw", digit)
    return Sipp(workdir, "uas_pcmu_stream", {"ULAW": str(ulaw)}, calls=None, timeout_s=None)
