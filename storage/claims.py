"""Serialising claims across processes: one helper shared by the claiming repositories.

PostgreSQL: a transaction-scoped advisory lock per kind of claim, so every claim sees every
earlier one committed (rows are then taken with `FOR UPDATE SKIP LOCKED`). SQLite (one
process): a write first, which takes the database's write lock for the transaction (the BEGIN
IMMEDIATE equivalent). Call it as the first statement of a fresh session.
"""

from __future__ import annotations

from sqlalchemy import Table, text, update
from sqlalchemy.orm import Session


def serialise_claims(session: Session, lock_key: int, table: Table, column: str) -> None:
    """Take the claim lock `lock_key` (PostgreSQL) or SQLite's write lock (a no-op update of
    `table.column`) for the rest of this transaction."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": lock_key})
    else:
        col = table.c[column]
        session.execute(update(table).where(text("1 = 0")).values({col: col}))
