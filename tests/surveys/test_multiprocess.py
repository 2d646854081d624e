"""Two service processes on one PostgreSQL share 50 due surveys: each is dialled once, and a
process killed mid-batch loses none (its leases expire and the other process takes them)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from storage import surveys as repo
from storage.base import utcnow
from storage.engine import session_scope
from storage.models.surveys import Survey, SurveyAttempt, SurveyStatus

pytestmark = [pytest.mark.integration, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[2]
SURVEYS = 50


@pytest.fixture
def workers(migrated_url: str, tmp_path: Path) -> Iterator[Callable[..., subprocess.Popen[bytes]]]:
    """Start worker processes; every one is stopped by PID at teardown."""
    started: list[subprocess.Popen[bytes]] = []

    def start(*extra: str) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(
            [sys.executable, "-m", "tests.surveys.worker", migrated_url,
             str(tmp_path / "dials.log"), *extra],
            cwd=ROOT, stderr=subprocess.PIPE,
        )  # fmt: skip
        started.append(proc)
        return proc

    yield start
    for proc in started:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)


def _stop(proc: subprocess.Popen[bytes]) -> int:
    """SIGTERM and wait: a worker stops its scheduler and exits 0."""
    os.kill(proc.pid, signal.SIGTERM)
    return proc.wait(15)


def _seed(factory: sessionmaker[Session]) -> set[str]:
    due = utcnow() - timedelta(seconds=1)
    with session_scope(factory) as s:
        return {
            repo.create_survey(s, number=f"+86138000{n:05d}", first_attempt_at=due).id
            for n in range(SURVEYS)
        }


def _dials(path: Path) -> list[tuple[str, int]]:
    if not path.exists():
        return []
    return [(a, int(b)) for a, b in (line.split() for line in path.read_text().splitlines())]


def _wait_all_answered(factory: sessionmaker[Session], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with session_scope(factory) as s:
            answered = s.scalar(select(func.count()).where(Survey.status == SurveyStatus.ANSWERED))
        if answered == SURVEYS:
            return
        time.sleep(0.2)
    pytest.fail(f"only {answered} of {SURVEYS} surveys answered in {timeout} s")


def _attempts(factory: sessionmaker[Session]) -> dict[str, list[str]]:
    with session_scope(factory) as s:
        rows = s.execute(select(SurveyAttempt.survey_id, SurveyAttempt.node)).all()
    out: dict[str, list[str]] = {}
    for sid, node in rows:
        out.setdefault(sid, []).append(node)
    return out


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_two_processes_dial_each_due_survey_exactly_once(
    factory: sessionmaker[Session], workers: Callable[..., subprocess.Popen[bytes]],
    tmp_path: Path,
) -> None:  # fmt: skip
    ids = _seed(factory)
    a = workers("--call-s", "0.5", "--concurrency", "5")
    b = workers("--call-s", "0.5", "--concurrency", "5")
    _wait_all_answered(factory, 60)
    dials = _dials(tmp_path / "dials.log")
    assert Counter(sid for sid, _ in dials) == Counter(dict.fromkeys(ids, 1))
    assert {pid for _, pid in dials} == {a.pid, b.pid}  # both processes took part
    attempts = _attempts(factory)
    assert {sid: len(nodes) for sid, nodes in attempts.items()} == dict.fromkeys(ids, 1)
    assert (_stop(a), _stop(b)) == (0, 0)


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_a_process_killed_mid_batch_loses_no_survey(
    factory: sessionmaker[Session], workers: Callable[..., subprocess.Popen[bytes]],
    tmp_path: Path,
) -> None:  # fmt: skip
    ids = _seed(factory)
    log = tmp_path / "dials.log"
    victim = workers("--call-s", "1.5", "--concurrency", "10", "--lease-s", "2")
    deadline = time.monotonic() + 30
    while not any(pid == victim.pid for _, pid in _dials(log)):
        assert time.monotonic() < deadline, "the first worker never dialled"
        time.sleep(0.05)
    survivor = workers("--call-s", "0.3", "--concurrency", "10", "--lease-s", "2")
    time.sleep(0.2)
    os.kill(victim.pid, signal.SIGKILL)  # mid-call: its calls last 1.5 s
    victim.wait(10)
    _wait_all_answered(factory, 60)

    dials = _dials(log)
    by_victim = {sid for sid, pid in dials if pid == victim.pid}
    attempts = _attempts(factory)
    interrupted = {sid for sid in by_victim if f"worker-{victim.pid}" not in attempts[sid]}
    assert interrupted, "the kill should have interrupted calls in flight"
    assert set(attempts) == ids  # none lost
    for sid in interrupted:  # dialled again by the survivor after the lease expired
        assert attempts[sid] == [f"worker-{survivor.pid}"]
    assert all(len(nodes) == 1 for nodes in attempts.values())
