"""Tokens are stored hashed and verify; the audit log keeps who did what."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from storage import audit
from storage.engine import make_engine, make_session_factory, session_scope
from storage.models.auth import ApiToken, Role
from storage.tokens import create_token, revoke_token, verify_token


def test_token_round_trip_and_revocation(migrated_url: str) -> None:
    factory = make_session_factory(make_engine(migrated_url))
    with session_scope(factory) as s:
        secret = create_token(s, name="desk 1", role=Role.DISPATCHER, unit_code=None)
    with session_scope(factory) as s:
        stored = s.scalars(select(ApiToken)).one()
        assert secret not in (stored.secret_hash, stored.prefix)  # never the secret itself
        principal = verify_token(s, secret)
        assert principal is not None and principal.role is Role.DISPATCHER
        assert verify_token(s, secret + "x") is None
        revoke_token(s, stored.id)
    with session_scope(factory) as s:
        assert verify_token(s, secret) is None


def test_unit_tokens_need_a_unit_and_others_must_not_have_one(migrated_url: str) -> None:
    factory = make_session_factory(make_engine(migrated_url))
    with session_scope(factory) as s:
        with pytest.raises(ValueError, match="unit code"):
            create_token(s, name="x", role=Role.UNIT, unit_code=None)
        with pytest.raises(ValueError, match="only unit tokens"):
            create_token(s, name="x", role=Role.ADMIN, unit_code="U01")


def test_audit_entries_keep_aware_utc_times(migrated_url: str) -> None:
    factory = make_session_factory(make_engine(migrated_url))
    before = datetime.now(UTC) - timedelta(seconds=1)
    with session_scope(factory) as s:
        audit.record(s, None, "recording.listen", "recording", "r1", detail={"track": "mixed"})
    with session_scope(factory) as s:
        (entry,) = audit.entries_for(s, "recording", "r1")
        assert entry.at.tzinfo is not None and entry.at >= before
        assert entry.detail == {"track": "mixed"} and entry.actor == "system"


def test_naive_datetimes_are_refused(migrated_url: str) -> None:
    factory = make_session_factory(make_engine(migrated_url))
    with pytest.raises(Exception, match="naive datetime"), session_scope(factory) as s:
        audit.record(s, None, "x", "y", "z").at = datetime(2026, 1, 1)
        s.flush()
