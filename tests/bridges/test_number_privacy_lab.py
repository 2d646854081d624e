"""Phone numbers are personal data (docs/security.md): no full number of a citizen, a
dispatcher seat or a unit's duty phone reaches the service's log, /metrics, or an answer to a
client that may not see it, on a real `linkcall serve` at LINKCALL_LOG_LEVEL=DEBUG.

Lab phones registered to Kamailio under realistic numbers (dialled in E.164, as the service
dials them): a citizen's mobile, a unit's landline with its area code, a dispatcher seat's
extension; a busy mobile that Kamailio sends to a SIPp rejecter (486). The service places a
bridge (unit by its roster), holds and adds a unit that is busy, takes an inbound call and
bridges it, runs a duty check and a callback survey, and answers number searches. Then every
line it wrote (stdout and stderr, media workers included) and every line of /metrics is searched
for the full numbers; so is a second copy of every record as the code formatted it, before
api/logs.py's formatters mask what still looks like a full number (the safety net must not
be what hides a number the code logged).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from lab import ports
from lab.baresip import BaresipPhone
from lab.kamailio import Kamailio
from lab.sipp import Sipp
from tests.bridges.conftest import cli_token

pytestmark = [pytest.mark.integration, pytest.mark.slow]

CITIZEN = "+8613912345601"  # a mobile: 139 1234 5601
UNIT = "+8657187654321"  # a landline: 0571-87654321
SEAT = "8417"  # a dispatcher seat's extension
BUSY = "+8613700000486"  # a mobile that is busy
CODE, OTHER_CODE = "L31", "L32"

# what must never appear: each number's national digits (also inside +86…, 86…), a landline's
# local part, and the extension standing alone (not inside an id, a port or a longer number)
FULL = [
    re.compile(r"13912345601"),
    re.compile(r"57187654321"),
    re.compile(r"87654321"),
    re.compile(r"13700000486"),
    re.compile(rf"(?<![0-9A-Za-z]){SEAT}(?![0-9A-Za-z])"),
]


def full_numbers(text: str) -> list[str]:
    """The lines of `text` holding a full lab number."""
    return [line for line in text.splitlines() if any(p.search(line) for p in FULL)]


@dataclass
class Service:
    base: str
    metrics: str
    log: Path
    raw_log: Path
    tokens: dict[str, str]
    proc: subprocess.Popen[bytes]

    def call(self, method: str, path: str, role: str = "dispatcher", **kw: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.tokens[role]}"} if role else {}
        return httpx.request(method, self.base + path, headers=headers, timeout=15, **kw)

    def until(self, what: str, fetch: Callable[[], Any], ok: Callable[[Any], bool],
              timeout: float = 30.0) -> Any:  # fmt: skip
        deadline = time.monotonic() + timeout
        value = fetch()
        while not ok(value):
            assert time.monotonic() < deadline, f"{what}: {value}"
            time.sleep(0.3)
            value = fetch()
        return value

    def bridge(self, bridge_id: str, ok: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
        return self.until(  # type: ignore[no-any-return]
            "bridge", lambda: self.call("GET", f"/api/v1/bridges/{bridge_id}").json(), ok
        )


def _connected(roles: set[str]) -> Callable[[dict[str, Any]], bool]:
    def check(body: dict[str, Any]) -> bool:
        states = {x["role"]: x["state"] for x in body["legs"]}
        return body["state"] == "connected" and all(states.get(r) == "connected" for r in roles)

    return check


@pytest.fixture
def lab(
    tmp_path: Path,
    kamailio_factory: Callable[..., Kamailio],
    lab_users: dict[str, str],
    phone_factory: Callable[..., BaresipPhone],
) -> Iterator[tuple[Service, dict[str, BaresipPhone]]]:
    rejecter = Sipp.rejecter(tmp_path / "busy", code=486, port=ports.sip_port())
    rejecter.start()
    accounts = {CITIZEN: "pwcitizen", UNIT: "pwunit", SEAT: "pwseat"}
    kam = kamailio_factory(
        users={"1000": lab_users["1000"], **accounts},
        trunk_regex=f"^[+]{BUSY[1:]}$",
        trunk_target=("127.0.0.1", rejecter.port),
    )
    phones = {
        n: phone_factory(n, tone_hz=hz, kamailio=kam, password=accounts[n])
        for n, hz in ((CITIZEN, 400.0), (SEAT, 1000.0), (UNIT, 1800.0))
    }
    rtp = ports.rtp_range(100)
    http_port, metrics_port = ports.sip_port(), ports.sip_port()
    env = {
        **os.environ,
        "LINKCALL_DATA_DIR": str(tmp_path / "data"),
        "LINKCALL_SIP_LISTEN": f"127.0.0.1:{ports.sip_port()}",
        "LINKCALL_SIP_REGISTRAR": f"127.0.0.1:{kam.udp_port}",
        "LINKCALL_SIP_USER": "1000",
        "LINKCALL_SIP_PASSWORD": lab_users["1000"],
        "LINKCALL_RTP_PORTS": f"{rtp.lo}-{rtp.hi}",
        "LINKCALL_NODE_NAME": "privacy-node",
        "LINKCALL_LOG_LEVEL": "DEBUG",
        "LINKCALL_METRICS_LISTEN": f"127.0.0.1:{metrics_port}",
        "LINKCALL_MEDIA_WORKERS": "2",
        "LINKCALL_DISPATCHER_SEATS": SEAT,
        "LINKCALL_UNIT_CONFIRM": "false",
        "LINKCALL_DIAL_RATE": "off",
        "LINKCALL_RING_TIMEOUT_UNIT_S": "6",
        "LINKCALL_DUTY_CHECK_RING_TIMEOUT_S": "10",
        "LINKCALL_SURVEY_HOURS": "00:00-23:59:59.999999",
        "LINKCALL_SURVEY_POLL_S": "0.5",
        "LINKCALL_SURVEY_MAX_ATTEMPTS": "1",
    }
    for name in ("LINKCALL_DATABASE_URL", "LINKCALL_CONFIG", "LINKCALL_LOG_FORMAT"):
        env.pop(name, None)
    tokens = {role: cli_token(env, role) for role in ("admin", "dispatcher", "supervisor")}
    log, raw_log = tmp_path / "service.log", tmp_path / "service.raw.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "tests.bridges.raw_log_serve", str(raw_log),
             "serve", "--port", str(http_port)],
            env=env, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    service = Service(
        f"http://127.0.0.1:{http_port}", f"http://127.0.0.1:{metrics_port}/metrics",
        log, raw_log, tokens, proc,
    )  # fmt: skip
    try:
        service.until(
            "readiness",
            lambda: _status(service, "/readyz") if proc.poll() is None else log.read_text(),
            lambda s: s == 200,
            timeout=60,
        )
        yield service, phones
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        rejecter.stop()
        ports.release(rtp)


def _status(service: Service, path: str) -> int:
    try:
        return service.call("GET", path, role="").status_code
    except httpx.HTTPError:
        return 0


def _unit_with_roster(service: Service, code: str, phone: str) -> None:
    unit = {"code": code, "name": f"联动单位{code}", "kind": "linkage"}
    made = service.call("POST", "/api/v1/units", role="admin", json=unit)
    assert made.status_code == 201, made.text
    iso = datetime.now(ZoneInfo("Asia/Shanghai")).isocalendar()
    roster = service.call(
        "PUT", f"/api/v1/units/{code}/rosters/{iso.year}-W{iso.week:02d}", role="admin",
        json={"leader": {"name": "赵主任", "phone": phone},
              "staff": [{"name": "值班员", "phone": phone, "order": 1}]},
    )  # fmt: skip
    assert roster.status_code in (200, 201), roster.text


def test_no_full_number_in_logs_metrics_or_answers_to_others(
    lab: tuple[Service, dict[str, BaresipPhone]], tmp_path: Path
) -> None:
    service, phones = lab
    citizen, seat, unit = phones[CITIZEN], phones[SEAT], phones[UNIT]
    _unit_with_roster(service, CODE, "0571-87654321")
    _unit_with_roster(service, OTHER_CODE, "0571-87650000")

    # an outbound bridge: the unit from its roster; hold, a busy second unit, the end
    made = service.call("POST", "/api/v1/bridges", json={
        "caller": {"number": "13912345601"}, "dispatcher": {"number": SEAT},
        "unit": {"unit_code": CODE}})  # fmt: skip
    assert made.status_code == 202, made.text
    bid = made.json()["id"]
    service.bridge(bid, _connected({"caller", "dispatcher", "unit"}))
    for action in ("hold", "unhold"):
        assert service.call("POST", f"/api/v1/bridges/{bid}/legs/unit/{action}").status_code == 200
    added = service.call("POST", f"/api/v1/bridges/{bid}/units", json={"number": "13700000486"})
    assert added.status_code == 202, added.text
    service.bridge(bid, lambda b: any(
        x["role"] == "unit2" and x["end_reason"] == "busy" for x in b["legs"]))  # fmt: skip
    assert service.call("POST", f"/api/v1/bridges/{bid}/end").status_code == 200
    service.bridge(bid, lambda b: b["state"] == "ended")
    for phone in phones.values():
        phone.wait_closed(15)

    # an inbound call from the citizen, answered at the seat, bridged with the unit's number
    since = seat.event_count()
    citizen.dial("1000")
    seat.wait_established(15, since)
    inbound = service.until(
        "inbound call",
        lambda: service.call("GET", "/api/v1/calls", params={"kind": "inbound"}).json(),
        lambda calls: bool(calls) and calls[0]["state"] == "connected",
    )[0]
    made = service.call("POST", "/api/v1/bridges", json={
        "caller": {"call_id": inbound["id"]}, "dispatcher": {"number": SEAT},
        "unit": {"number": "0571-87654321"}})  # fmt: skip
    assert made.status_code == 202, made.text
    service.bridge(inbound["id"], _connected({"caller", "dispatcher", "unit"}))
    time.sleep(1.0)
    citizen.hangup()
    assert service.call("POST", f"/api/v1/bridges/{inbound['id']}/end").status_code == 200
    service.bridge(inbound["id"], lambda b: b["state"] == "ended")
    for phone in phones.values():
        phone.wait_closed(15)

    # a duty check of the unit (pressing 1) and a callback survey of the citizen (pressing 2)
    since = unit.event_count()
    assert (
        service.call("POST", f"/api/v1/units/{CODE}/duty-checks", role="supervisor").status_code
        == 202
    )
    unit.wait_established(20, since)
    time.sleep(1.5)
    unit.send_dtmf("1")
    service.until(
        "duty check",
        lambda: service.call("GET", f"/api/v1/units/{CODE}/duty-checks", role="supervisor").json(),
        lambda checks: bool(checks) and checks[0]["outcome"] == "pass",
        timeout=40,
    )
    citizen.press_on_answer("2", delay_s=2.0)
    survey = service.call("POST", "/api/v1/surveys", json={"number": "13912345601"})
    assert survey.status_code == 201, survey.text
    service.until(
        "survey",
        lambda: service.call("GET", f"/api/v1/surveys/{survey.json()['id']}").json(),
        lambda s: s["status"] in ("answered", "unreached", "cancelled"),
        timeout=60,
    )

    # searches by number (the access log), metrics, and what others may see
    for search in ("13912345601", "+8613912345601", "5601", SEAT):
        found = service.call("GET", "/api/v1/calls", params={"number": search})
        assert found.status_code == 200 and found.json(), (search, found.text)
    metrics = httpx.get(service.metrics, timeout=10).text
    offending = [
        line for line in full_numbers(metrics)
        if line.startswith("#") or full_numbers(line.rsplit(" ", 1)[0])
    ]  # fmt: skip
    other = {"role": "unit", "unit_code": OTHER_CODE, "name": "其他单位"}
    unit_token = service.call("POST", "/api/v1/tokens", role="admin", json=other)
    assert unit_token.status_code == 201, unit_token.text
    service.tokens["other_unit"] = unit_token.json()["token"]
    others: dict[str, str] = {}
    for path in ("/readyz", "/healthz", "/api/v1/calls", f"/api/v1/bridges/{bid}"):
        others[f"anonymous {path}"] = service.call("GET", path, role="").text
    for path in (
        f"/api/v1/units/{CODE}/rosters",
        f"/api/v1/units/{CODE}/dial-list",
        f"/api/v1/bridges/{bid}",
        "/api/v1/calls",
        f"/api/v1/units/{CODE}/duty-checks",
    ):
        others[f"unit {OTHER_CODE} {path}"] = service.call("GET", path, role="other_unit").text

    service.proc.send_signal(signal.SIGTERM)
    service.proc.wait(30)
    log, raw = service.log.read_text(), service.raw_log.read_text()
    assert "dialling" in raw and "DEBUG" in raw and "media worker" in log, "the log is incomplete"
    problems = {
        "service log (stdout/stderr)": full_numbers(log),
        "records as the code wrote them": full_numbers(raw),
        "/metrics": offending,
        **{k: full_numbers(v) for k, v in others.items()},
    }
    assert not any(problems.values()), {k: v[:20] for k, v in problems.items() if v}
