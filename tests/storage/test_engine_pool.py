"""The PostgreSQL pool pings a connection only after it sat idle, and replaces a dead one."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from storage import engine as engine_mod
from storage.engine import make_engine


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_a_connection_killed_while_idle_is_replaced_before_use(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = make_engine(db_url)
    try:
        with engine.connect() as conn:
            pid = conn.execute(text("SELECT pg_backend_pid()")).scalar_one()
        with make_engine(db_url).connect() as other:  # PostgreSQL restarted, say
            other.execute(text("SELECT pg_terminate_backend(:p)"), {"p": pid})
        monkeypatch.setattr(engine_mod, "PING_IDLE_S", 0.0)  # idle long enough to be pinged
        with engine.connect() as conn:
            assert conn.execute(text("SELECT pg_backend_pid()")).scalar_one() != pid
    finally:
        engine.dispose()


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_a_connection_back_in_the_pool_just_now_is_used_without_a_ping(db_url: str) -> None:
    """The price of not pinging a busy pool: a connection that died within the last second
    fails the one statement that uses it (the pool is then renewed; the next one works)."""
    engine = make_engine(db_url)
    try:
        with engine.connect() as conn:
            pid = conn.execute(text("SELECT pg_backend_pid()")).scalar_one()
        with make_engine(db_url).connect() as other:
            other.execute(text("SELECT pg_terminate_backend(:p)"), {"p": pid})
        with pytest.raises(DBAPIError) as failed, engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        assert failed.value.connection_invalidated
        with engine.connect() as conn:
            assert conn.execute(text("SELECT pg_backend_pid()")).scalar_one() != pid
    finally:
        engine.dispose()
