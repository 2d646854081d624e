"""The shared claim/lease helper (storage/claims.py, storage/attempts.py) on SQLite and
PostgreSQL: claims are serialised (a second claimer waits, then finds the row taken), a lease
that expires is claimed again, a renewed lease is not, one number is called once at a time, an
attempt stored after the lease was lost does not change the row, and a final state is stored
with its reason."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.orm import Session, sessionmaker

from storage import surveys
from storage.attempts import AttemptValues, record_attempt, settle
from storage.claims import LeaseTable
from storage.engine import make_engine, make_session_factory, session_scope
from storage.models.surveys import Survey, SurveyAttempt, SurveyStatus
from storage.surveys import SURVEYS

NOW = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)
LEASE = timedelta(seconds=60)


@pytest.fixture
def factory(migrated_url: str) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(migrated_url)
    yield make_session_factory(engine)
    engine.dispose()


def _survey(factory: sessionmaker[Session], number: str = "+8613800000001") -> str:
    with session_scope(factory) as s:
        return surveys.create_survey(s, number=number, first_attempt_at=NOW).id


def _claim(
    factory: sessionmaker[Session],
    node: str,
    now: datetime = NOW,
    table: LeaseTable[Survey] = SURVEYS,
) -> list[str]:
    with session_scope(factory) as s:
        return [r.id for r in table.claim_due(s, node=node, now=now, lease=LEASE, limit=10)]


def test_a_second_claimer_waits_for_the_first_and_finds_the_row_taken(
    factory: sessionmaker[Session],
) -> None:
    sid = _survey(factory)
    first = factory()
    assert [r.id for r in SURVEYS.claim_due(first, node="a", now=NOW, lease=LEASE, limit=5)] == [
        sid
    ]
    second: list[list[str]] = []
    racer = threading.Thread(target=lambda: second.append(_claim(factory, "b")))
    racer.start()
    racer.join(0.5)
    try:
        # serialised: the second claim waits on the first one's lock (advisory / write lock)
        assert racer.is_alive()
    finally:
        first.commit()
        first.close()
        racer.join(30)
    assert second == [[]]  # it then sees the row calling under a live lease
    with session_scope(factory) as s:
        row = s.get(Survey, sid)
        assert row is not None and (row.status, row.claimed_by) == (SurveyStatus.CALLING, "a")


def test_two_claimers_at_once_call_a_due_row_once(factory: sessionmaker[Session]) -> None:
    ids = {_survey(factory, f"+86138000000{n:02d}") for n in range(6)}
    barrier = threading.Barrier(2)
    taken: dict[str, list[str]] = {}

    def node(name: str) -> None:
        barrier.wait(5)
        taken[name] = _claim(factory, name)

    threads = [threading.Thread(target=node, args=(n,)) for n in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(taken["a"] + taken["b"]) == sorted(ids)  # every row once, none twice


def test_an_expired_lease_is_claimed_again_and_a_renewed_one_is_not(
    factory: sessionmaker[Session],
) -> None:
    sid = _survey(factory)
    assert _claim(factory, "a") == [sid]
    with session_scope(factory) as s:
        assert SURVEYS.renew(s, node="b", ids=[sid], until=NOW + 2 * LEASE) == 0  # not b's
        assert SURVEYS.renew(s, node="a", ids=[sid], until=NOW + 2 * LEASE) == 1
    assert _claim(factory, "b", NOW + LEASE) == []  # a's renewed lease still holds
    assert _claim(factory, "b", NOW + 2 * LEASE) == [sid]  # a died: expired, b takes it
    with session_scope(factory) as s:
        row = s.get(Survey, sid)
        assert row is not None and row.claimed_by == "b"
        assert row.claimed_until == NOW + 3 * LEASE


def test_one_number_is_claimed_once_at_a_time(factory: sessionmaker[Session]) -> None:
    first, second = _survey(factory), _survey(factory)
    other = _survey(factory, "+8613900000009")
    claimed = _claim(factory, "a")
    assert len(claimed) == 2 and other in claimed  # one of the two rows of the number
    assert _claim(factory, "b") == []  # the number is being called under a live lease
    waiting = ({first, second} - set(claimed)).pop()
    with session_scope(factory) as s:
        row = s.get(Survey, waiting)
        assert row is not None and row.status is SurveyStatus.PENDING


def _values(outcome: str) -> AttemptValues:
    return AttemptValues(outcome, None, "", NOW, NOW + timedelta(seconds=30))


def test_an_attempt_after_the_lease_was_lost_is_kept_but_changes_nothing(
    factory: sessionmaker[Session],
) -> None:
    sid = _survey(factory)
    assert _claim(factory, "a") == [sid]
    assert _claim(factory, "b", NOW + LEASE) == [sid]  # a stalled; b took it over
    with session_scope(factory) as s:
        row, owned, history = record_attempt(
            s, SURVEYS, SurveyAttempt, sid, node="a", attempt_no=1, values=_values("no_answer")
        )
        assert not owned and history == [("no_answer", NOW + timedelta(seconds=30), None)]
        assert (row.status, row.claimed_by, row.attempts) == (SurveyStatus.CALLING, "b", 1)


def test_a_retry_releases_the_lease_and_a_final_state_keeps_its_reason(
    factory: sessionmaker[Session],
) -> None:
    sid = _survey(factory)
    retry_at = NOW + timedelta(minutes=30)
    for attempt_no, (status, reason) in enumerate(
        [(SurveyStatus.PENDING, "retry:no_answer"), (SurveyStatus.UNREACHED, "last_attempt:busy")],
        start=1,
    ):
        now = NOW + timedelta(minutes=30 * (attempt_no - 1))
        assert _claim(factory, "a", now) == [sid]
        with session_scope(factory) as s:
            _row, owned, _ = record_attempt(
                s, SURVEYS, SurveyAttempt, sid, node="a", attempt_no=attempt_no,
                values=_values("no_answer"),
            )  # fmt: skip
            assert owned
            settle(s, SURVEYS, sid, status=status, now=now, reason=reason, next_attempt_at=retry_at)
    with session_scope(factory) as s:
        row = s.get(Survey, sid)
        assert row is not None
        assert (row.status, row.end_reason, row.next_attempt_at) == (
            SurveyStatus.UNREACHED, "last_attempt:busy", None,
        )  # fmt: skip
        assert (row.claimed_by, row.claimed_until, row.attempts) == (None, None, 2)
        assert row.finished_at == NOW + timedelta(minutes=30)
    assert _claim(factory, "a", NOW + timedelta(days=1)) == []  # never claimed again
