"""The shared event stream in the `events` table (PostgreSQL, several nodes).

Appends are serialised by a transaction-scoped advisory lock, so ids become visible in id order:
a reader that has seen id N never later finds a committed id below N (no event is skipped by
`after`). The same transaction sends NOTIFY on `CHANNEL` (payload: the appending node's name),
delivered to listeners at commit.

The event stream's own threads use dedicated psycopg connections (`open_writer`,
`open_listener`) and plain SQL: `append_pipelined` sends the lock, the read of the rows stored
since the node last delivered, the insert, the NOTIFY and the commit in one pipeline (one round
trip instead of five with a pool checkout), and `after_raw` reads on the listener's connection.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
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
        session.execute(text("SELECT pg_notify(:c, :n)"), {"c": CHANNEL, "n": node})


@dataclass(frozen=True, slots=True)
class Appended:
    """What `append_pipelined` stored: the new rows' ids (in the order of the events given)
    and the rows other nodes stored after `since` and before them (all of them, unless
    `complete` is False: more than the read's limit)."""

    ids: list[int]
    before: list[EventRow]
    complete: bool


_SELECT = "SELECT id, node, type, data, at FROM events"


def _row(r: tuple[Any, ...]) -> EventRow:
    return EventRow(r[0], r[1], r[2], r[3], r[4].astimezone(UTC))


def append_pipelined(
    conn: psycopg.Connection[Any],
    node: str,
    events: Sequence[NewEvent],
    since: int,
    gap_limit: int = 1000,
) -> Appended:
    """Store `events` of `node` in one transaction sent as one pipeline, on an autocommit
    connection from `open_writer`: the append lock, the rows stored after `since` (the last id
    this node delivered; those rows are all committed, the lock is held), the insert, NOTIFY."""
    types = [t for t, _, _ in events]
    datas = [json.dumps(d, ensure_ascii=False) for _, d, _ in events]
    ats = [at for _, _, at in events]
    with conn.pipeline(), conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_APPEND_LOCK,))
        gap = conn.execute(f"{_SELECT} WHERE id > %s ORDER BY id LIMIT %s", (since, gap_limit))
        ins = conn.execute(
            "INSERT INTO events (node, type, data, at) "
            "SELECT %s, t, d::json, a FROM unnest(%s::text[], %s::text[], %s::timestamptz[]) "
            "WITH ORDINALITY AS u(t, d, a, n) ORDER BY n RETURNING id",
            (node, types, datas, ats),
        )
        conn.execute("SELECT pg_notify(%s, %s)", (CHANNEL, node))
    before = [_row(r) for r in gap.fetchall()]
    # nextval runs in the order the rows are inserted (ORDER BY n): sorted ids are in order
    ids = sorted(r[0] for r in ins.fetchall())
    return Appended(ids, before, len(before) < gap_limit)


def after_raw(conn: psycopg.Connection[Any], last_id: int, limit: int = 1000) -> list[EventRow]:
    """`after` on a dedicated autocommit connection (the listener's or the writer's)."""
    cur = conn.execute(f"{_SELECT} WHERE id > %s ORDER BY id LIMIT %s", (last_id, limit))
    return [_row(r) for r in cur.fetchall()]


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


def open_writer(dsn: str, connect_timeout_s: int = 5) -> psycopg.Connection[Any]:
    """A dedicated autocommit connection for `append_pipelined` (close it when done)."""
    return psycopg.connect(dsn, autocommit=True, connect_timeout=connect_timeout_s)


def open_listener(dsn: str, connect_timeout_s: int = 5) -> psycopg.Connection[Any]:
    """A dedicated autocommit connection listening on `CHANNEL` (close it when done)."""
    conn = psycopg.connect(dsn, autocommit=True, connect_timeout=connect_timeout_s)
    try:
        conn.execute(f"LISTEN {CHANNEL}")
    except BaseException:
        conn.close()
        raise
    return conn


def wait_notify(conn: psycopg.Connection[Any], timeout_s: float) -> set[str] | None:
    """Wait up to `timeout_s` for NOTIFYs on `conn`: the payloads (the appending nodes) of
    those that arrived, None if none did. Raises psycopg.OperationalError when the connection
    is gone."""
    got: set[str] | None = None
    for note in conn.notifies(timeout=timeout_s, stop_after=1):
        got = (got or set()) | {note.payload}
    return got
