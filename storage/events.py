"""The shared event stream in the `events` table (PostgreSQL, several nodes).

Appends are serialised by a transaction-scoped advisory lock, so ids become visible in id order:
a reader that has seen id N never later finds a committed id below N (no event is skipped by
`after`). The same transaction sends NOTIFY on `CHANNEL`, delivered to listeners at commit.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from sqlalchemy import delete, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from storage.models.events import StoredEvent

CHANNEL = "linkcall_events"
_APPEND_LOCK = 0x6C696E6B  # "link": one advisory lock key for appends


@dataclass(frozen=True, slots=True)
class EventRow:
    """A stored event, as read back."""

    id: int
    node: str
    type: str
    data: dict[str, Any]
    at: datetime


NewEvent = tuple[str, dict[str, Any], datetime]


def append(session: Session, node: str, events: Sequence[NewEvent]) -> None:
    """Store `events` (type, data, at) of `node` in order and wake the listeners at commit.
    Commit right after."""
    if not events:
        return
    postgres = session.get_bind().dialect.name == "postgresql"
    if postgres:
        session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _APPEND_LOCK})
    session.add_all(StoredEvent(node=node, type=t, data=d, at=at) for t, d, at in events)
    session.flush()
    if postgres:
        session.execute(text(f"NOTIFY {CHANNEL}"))


def after(session: Session, last_id: int, limit: int = 1000) -> list[EventRow]:
    """Events with an id above `last_id`, oldest first, at most `limit`."""
    rows = session.scalars(
        select(StoredEvent).where(StoredEvent.id > last_id).order_by(StoredEvent.id).limit(limit)
    )
    return [EventRow(r.id, r.node, r.type, r.data, r.at) for r in rows]


def last_id(session: Session) -> int:
    """The newest event's id (0: none)."""
    return session.scalar(select(StoredEvent.id).order_by(StoredEvent.id.desc()).limit(1)) or 0


def prune(session: Session, before: datetime) -> int:
    """Delete events older than `before`; returns how many."""
    result = session.execute(delete(StoredEvent).where(StoredEvent.at < before))
    return int(getattr(result, "rowcount", 0) or 0)


def listener_dsn(database_url: str) -> str:
    """A libpq URI for psycopg from the service's SQLAlchemy URL."""
    return make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)


def open_listener(dsn: str, connect_timeout_s: int = 5) -> psycopg.Connection[Any]:
    """A dedicated autocommit connection listening on `CHANNEL` (close it when done)."""
    conn = psycopg.connect(dsn, autocommit=True, connect_timeout=connect_timeout_s)
    try:
        conn.execute(f"LISTEN {CHANNEL}")
    except BaseException:
        conn.close()
        raise
    return conn


def wait_notify(conn: psycopg.Connection[Any], timeout_s: float) -> bool:
    """Wait up to `timeout_s` for a NOTIFY on `conn`; True if one (or more) arrived. Raises
    psycopg.OperationalError when the connection is gone."""
    got = False
    for _ in conn.notifies(timeout=timeout_s, stop_after=1):
        got = True
    return got
