"""Engine and session factories for SQLite (the default) and PostgreSQL."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy import exc as exc_mod
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from storage.errors import StorageConfigError


def normalise_url(url: str) -> str:
    """Use the psycopg 3 driver for plain postgresql:// URLs."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


def make_engine(url: str, *, echo: bool = False) -> Engine:
    """Build an engine. SQLite files get their directory created, WAL mode and foreign keys."""
    try:
        parsed = make_url(normalise_url(url))
    except Exception as exc:  # sqlalchemy raises ArgumentError and friends
        raise StorageConfigError(f"invalid database URL: {exc}") from exc
    # a failed statement's text (logged with its traceback, shown as a component's last error)
    # names the SQL but never its parameters: they hold phone numbers (docs/security.md)
    kwargs: dict[str, Any] = {"echo": echo, "hide_parameters": True}
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
    else:
        kwargs.update(pool_size=10, max_overflow=30)
    engine = create_engine(parsed, **kwargs)
    if parsed.get_backend_name() == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    else:
        event.listen(engine.pool, "checkin", _note_checkin)
        event.listen(engine.pool, "checkout", _ping_if_idle)
    return engine


# A pooled connection is pinged before use only when it sat idle in the pool for longer than
# this (issue 17). `pool_pre_ping` pinged on every checkout: one more round trip, and under load
# one more wake-up of the thread, per unit of work. A connection back in the pool within the last
# second was working then; one idle longer (a PostgreSQL restart, a firewall's idle timeout) is
# checked and, if dead, replaced before use, as with pool_pre_ping.
PING_IDLE_S = 1.0


def _note_checkin(_dbapi_conn: Any, record: Any) -> None:
    if record is not None:
        record.info["checked_in"] = time.monotonic()


def _ping_if_idle(dbapi_conn: Any, record: Any, _proxy: Any) -> None:
    since = record.info.get("checked_in")
    if since is not None and time.monotonic() - since < PING_IDLE_S:
        return
    try:
        cur = dbapi_conn.cursor()
        try:
            cur.execute("SELECT 1")
        finally:
            cur.close()
        if not getattr(dbapi_conn, "autocommit", True):
            dbapi_conn.rollback()  # the ping's transaction; the session begins its own
    except Exception as exc:
        # the pool discards this connection and checks out another (a fresh one if need be)
        raise exc_mod.DisconnectionError(f"pooled connection is dead: {exc}") from exc


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")  # WAL: durable at checkpoints, no fsync per commit
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    """Sessions that keep loaded values after commit (API handlers read them afterwards)."""
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def session_scope(factory: sessionmaker[Session]) -> Iterator[Session]:
    """A unit of work: commit on success, roll back on any error, always close."""
    session = factory()
    ok = False
    try:
        yield session
        ok = True
    finally:
        finish_session(session, ok=ok)


def finish_session(session: Session, *, ok: bool) -> None:
    """End a unit of work: commit when `ok` (rolled back if the commit fails), else roll back;
    always close."""
    try:
        if not ok:
            session.rollback()
            return
        try:
            session.commit()
        except Exception:
            session.rollback()
            raise
    finally:
        session.close()
