"""Two service processes (`python -m api serve`) on one PostgreSQL call 50 due surveys against a
SIPp answerer pressing 1 by SIP INFO (issue 7): each survey is dialled exactly once (INVITEs
counted in SIPp's message log, calls rows per number), and a process SIGKILLed mid-batch loses
none (its leases expire, the other process calls those surveys again)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from lab import ports
from lab.sipp import Sipp
from registry.numbers import DialPolicy
from storage import surveys as repo
from storage.base import utcnow
from storage.engine import make_engine, make_session_factory, session_scope
from storage.models.call_records import Call, CallKind, Leg
from storage.models.surveys import Survey, SurveyAttempt, SurveyStatus
from tests.surveys_lab.conftest import SURVEY_ENV, sipp_info_answerer

pytestmark = [pytest.mark.integration, pytest.mark.slow]
SURVEYS = 50
ROOT = Path(__file__).resolve().parents[2]


class ServiceProcess:
    """`python -m api serve` as a child process, stopped (or killed) by its PID."""

    def __init__(self, env: dict[str, str], port: int, log: Path) -> None:
        self.env, self.port, self.log = env, port, log
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def node(self) -> str:
        return self.env["LINKCALL_NODE_NAME"]

    def start(self) -> None:
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "api", "serve", "--port", str(self.port)],
                env=self.env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
            )  # fmt: skip

    def wait_ready(self, timeout: float = 60.0) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.log.read_text()[-3000:]
            try:
                if httpx.get(f"http://127.0.0.1:{self.port}/readyz", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        raise AssertionError(f"service not ready: {self.log.read_text()[-3000:]}")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, sig)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)


@pytest.fixture
def factory(migrated_url: str) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(migrated_url)
    try:
        yield make_session_factory(engine)
    finally:
        engine.dispose()


@pytest.fixture
def answerer(tmp_path: Path) -> Iterator[Sipp]:
    sipp = sipp_info_answerer(tmp_path / "sipp", "1", delay_ms=500)
    sipp.start()
    try:
        yield sipp
    finally:
        sipp.stop()


@pytest.fixture
def services(
    migrated_url: str, tmp_path: Path, answerer: Sipp
) -> Iterator[Callable[[str], ServiceProcess]]:
    """`services(name)` starts a service process on the shared database; all stopped by PID."""
    started: list[ServiceProcess] = []
    ranges: list[ports.RtpRange] = []

    def start(name: str) -> ServiceProcess:
        rtp = ports.rtp_range(100)
        ranges.append(rtp)
        env = {
            **os.environ,
            **SURVEY_ENV,
            "LINKCALL_SURVEY_LEASE_S": "3",
            "LINKCALL_NODE_NAME": name,
            "LINKCALL_DATABASE_URL": migrated_url,
            "LINKCALL_DATA_DIR": str(tmp_path / name),
            "LINKCALL_SIP_LISTEN": f"127.0.0.1:{ports.sip_port()}",
            "LINKCALL_SIP_REGISTRAR": "",
            "LINKCALL_SIP_TRUNK_PEER": f"127.0.0.1:{answerer.port}",
            "LINKCALL_RTP_PORTS": f"{rtp.lo}-{rtp.hi}",
            "LINKCALL_RING_TIMEOUT_CALLER_S": "5",
        }
        proc = ServiceProcess(env, ports.sip_port(), tmp_path / f"{name}.log")
        started.append(proc)
        proc.start()
        return proc

    try:
        yield start
    finally:
        for proc in started:
            proc.stop()
        for rtp in ranges:
            ports.release(rtp)


def _seed(factory: sessionmaker[Session]) -> dict[str, str]:
    """50 surveys due now; returns survey id -> number."""
    due = utcnow() - timedelta(seconds=1)
    with session_scope(factory) as s:
        infos = [
            repo.create_survey(s, number=f"+86138000{n:05d}", first_attempt_at=due)
            for n in range(SURVEYS)
        ]
        return {i.id: i.number for i in infos}


def _wait_all_answered(factory: sessionmaker[Session], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    answered = 0
    while time.monotonic() < deadline:
        with session_scope(factory) as s:
            answered = (
                s.scalar(select(func.count()).where(Survey.status == SurveyStatus.ANSWERED)) or 0
            )
        if answered == SURVEYS:
            return
        time.sleep(0.3)
    pytest.fail(f"only {answered} of {SURVEYS} surveys answered in {timeout} s")


def _attempts(factory: sessionmaker[Session]) -> dict[str, list[tuple[str, str, str | None]]]:
    """survey id -> [(node, outcome, key)]."""
    with session_scope(factory) as s:
        rows = s.execute(
            select(SurveyAttempt.survey_id, SurveyAttempt.node, SurveyAttempt.outcome,
                   SurveyAttempt.key)
        ).all()  # fmt: skip
    out: dict[str, list[tuple[str, str, str | None]]] = {}
    for sid, node, outcome, key in rows:
        out.setdefault(sid, []).append((node, outcome, key))
    return out


def _calls_by_number(factory: sessionmaker[Session]) -> dict[str, list[str]]:
    """Dialled number -> the nodes that placed a callback call to it."""
    with session_scope(factory) as s:
        rows = s.execute(
            select(Leg.number, Call.node).join(Call, Leg.call_id == Call.id)
            .where(Call.kind == CallKind.CALLBACK)
        ).all()  # fmt: skip
    out: dict[str, list[str]] = {}
    for number, node in rows:
        out.setdefault(number or "", []).append(node)
    return out


_BLOCK = re.compile(r"^-{20,}.*$", re.M)


def _invites(sipp_dir: Path) -> Counter[str]:
    """Distinct INVITE transactions SIPp received, per Request-URI user (retransmissions and
    re-sent copies of one Call-ID count once)."""
    seen: set[tuple[str, str]] = set()
    for path in sipp_dir.glob("*_messages.log"):
        for block in _BLOCK.split(path.read_text(errors="replace")):
            m = re.search(r"^INVITE sip:([^@;>\s]+)@", block, re.M)
            cid = re.search(r"^Call-ID:\s*(\S+)", block, re.M | re.I)
            if m and cid and "received" in block.split("\n", 3)[1]:
                seen.add((m.group(1), cid.group(1)))
    return Counter(user for user, _ in seen)


def _dial_form(number: str) -> str:
    return DialPolicy(home_region="CN").check(number).dial


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_two_processes_dial_each_due_survey_exactly_once(
    factory: sessionmaker[Session], services: Callable[[str], ServiceProcess], tmp_path: Path
) -> None:
    a, b = services("node-a"), services("node-b")
    a.wait_ready()
    b.wait_ready()
    numbers = _seed(factory)
    _wait_all_answered(factory, 60)

    attempts = _attempts(factory)
    assert set(attempts) == set(numbers)
    assert all(len(v) == 1 and v[0][1:] == ("answer", "1") for v in attempts.values()), attempts
    assert {v[0][0] for v in attempts.values()} == {"node-a", "node-b"}  # both took part
    dialled = {_dial_form(n) for n in numbers.values()}
    calls = _calls_by_number(factory)
    assert {n: len(nodes) for n, nodes in calls.items()} == dict.fromkeys(dialled, 1)
    assert _invites(tmp_path / "sipp") == Counter(dict.fromkeys(dialled, 1))


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_a_process_killed_mid_batch_loses_no_survey(
    factory: sessionmaker[Session], services: Callable[[str], ServiceProcess], tmp_path: Path
) -> None:
    victim, survivor = services("victim"), services("survivor")
    victim.wait_ready()
    survivor.wait_ready()
    numbers = _seed(factory)
    deadline = time.monotonic() + 30
    while True:  # kill once the victim has calls in flight (rows are final only at the end)
        with session_scope(factory) as s:
            live = s.scalar(
                select(func.count()).where(Call.node == "victim", Call.ended_at.is_(None))
            ) or 0  # fmt: skip
        if live >= 3:
            break
        assert time.monotonic() < deadline, "the victim never had calls in flight"
        time.sleep(0.05)
    time.sleep(1.0)  # answered, the key not yet stored (SIPp presses it 0.5 s in, then thanks)
    victim.stop(signal.SIGKILL)
    _wait_all_answered(factory, 60)

    attempts = _attempts(factory)
    assert set(attempts) == set(numbers)  # none lost
    assert all(len(v) == 1 and v[0][1:] == ("answer", "1") for v in attempts.values()), attempts
    calls = _calls_by_number(factory)
    invites = _invites(tmp_path / "sipp")
    interrupted = set()
    for sid, number in numbers.items():
        dial = _dial_form(number)
        (node, _, _) = attempts[sid][0]
        if calls[dial] == ["victim", "survivor"] or calls[dial] == ["survivor", "victim"]:
            interrupted.add(sid)  # the victim's call died with it; the survivor called again
            assert node == "survivor" and invites[dial] == 2
        else:
            assert len(calls[dial]) == 1 and calls[dial] == [node] and invites[dial] == 1
    assert interrupted, "the kill should have interrupted calls in flight"
