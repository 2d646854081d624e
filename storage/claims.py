"""Claiming rows with a lease: the one claim/lease helper of the repositories whose rows are
placed as calls (surveys, roster reminders, planned duty checks) or sent (the webhook outbox).

Every such table has a `status` with a waiting state (due from a time column) and a `calling`
state (`sending` for the outbox), and the lease of the process working on a row now:
`claimed_by`, `claimed_until`.

    waiting ──claim (due)──▶ calling ──release──▶ waiting again | a final state
    calling ──lease expired (the claiming process died)──▶ claimed again by another process

- Claims are serialised (`serialise_claims`): on PostgreSQL a transaction-scoped advisory lock
  per kind of claim, so every claim sees every earlier one committed; on SQLite (one process) a
  write first, which takes the database's write lock for the transaction (the BEGIN IMMEDIATE
  equivalent). Rows are then taken with `SELECT … FOR UPDATE SKIP LOCKED` (a row another
  transaction is writing, e.g. a result being stored, is skipped instead of waited for).
- A table with a number column never has one number called twice at once: a number with a row
  `calling` under a live lease is not claimed, and one batch takes at most one row per number.
- The claimer renews its lease while the call runs (`LeaseTable.renew`); a result stored after
  the lease was lost must not change the row's status (`LeaseTable.owned`).

`LeaseTable` describes one such table; the repositories keep what is their own (which columns a
claimed row carries, what a final state stores).
"""

from __future__ import annotations

import enum
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Generic, Protocol, TypeVar

from sqlalchemy import Table, and_, or_, select, text, update
from sqlalchemy.orm import Session, class_mapper

from storage.errors import NotFound


def serialise_claims(session: Session, lock_key: int, table: Table, column: str) -> None:
    """Take the claim lock `lock_key` (PostgreSQL) or SQLite's write lock (a no-op update of
    `table.column`) for the rest of this transaction."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": lock_key})
    else:
        col = table.c[column]
        session.execute(update(table).where(text("1 = 0")).values({col: col}))


class LeasedRow(Protocol):
    """A mapped row claimed with a lease."""

    id: str
    status: Any  # the table's own status enum
    claimed_by: str | None
    claimed_until: datetime | None


RowT = TypeVar("RowT", bound=LeasedRow)


@dataclass(frozen=True, slots=True)
class LeaseTable(Generic[RowT]):
    """One table whose rows are claimed with a lease.

    `waiting` rows are due once `due_column` has passed; claimed rows are `calling`. `kind`
    names a row in NotFound; with `log` (the repository's logger) an expired lease claimed
    again is logged as a warning naming the row `log_name`; `number_column`, when set, is the
    number called (one call per number at a time); `lock_column` is the column SQLite's
    locking no-op write touches; `order_columns` order rows due at the same time (before `id`).
    """

    model: type[RowT]
    lock_key: int
    lock_column: str
    waiting: enum.Enum
    calling: enum.Enum
    due_column: str
    kind: str
    number_column: str | None = None
    log: logging.Logger | None = None
    log_name: str = ""
    order_columns: tuple[str, ...] = ()

    def _col(self, name: str) -> Any:
        return class_mapper(self.model).c[name]

    def lock(self, session: Session) -> None:
        """Serialise this table's claims for the rest of the transaction (the first statement
        of a fresh session)."""
        table = class_mapper(self.model).local_table
        serialise_claims(session, self.lock_key, table, self.lock_column)  # type: ignore[arg-type]

    def claim_due(
        self, session: Session, *, node: str, now: datetime, lease: timedelta, limit: int
    ) -> list[RowT]:
        """Lock, then claim up to `limit` due rows for `node` until `now + lease`. Commit
        right after. Use a fresh session: the lock must be its first statement."""
        if limit <= 0:
            return []
        self.lock(session)
        return self.take_due(session, node=node, now=now, lease=lease, limit=limit)

    def take_due(
        self, session: Session, *, node: str, now: datetime, lease: timedelta, limit: int
    ) -> list[RowT]:
        """`claim_due` once the lock is held. Due: waiting with the due time passed, or
        calling under an expired lease; oldest due first."""
        status, until_col, due_col = (self._col(n) for n in ("status", "claimed_until",
                                                              self.due_column))  # fmt: skip
        due = or_(
            and_(status == self.waiting, due_col <= now),
            and_(status == self.calling, until_col <= now),
        )
        stmt = select(self.model).where(due)
        if self.number_column is not None:
            number = self._col(self.number_column)
            busy = select(number).where(status == self.calling, until_col > now)
            stmt = stmt.where(number.not_in(busy))
        order = (due_col, *(self._col(n) for n in self.order_columns), self._col("id"))
        stmt = stmt.order_by(*order).limit(limit).with_for_update(skip_locked=True)
        until = now + lease
        claimed: list[RowT] = []
        numbers: set[str] = set()
        for row in session.scalars(stmt):
            if self.number_column is not None:
                number_value = getattr(row, self.number_column)
                if number_value in numbers:
                    continue  # one call per number at a time, also within a batch
                numbers.add(number_value)
            if row.status is self.calling and self.log is not None:
                self.log.warning(
                    "%s %s: lease of %s expired, claiming it again",
                    self.log_name, row.id, row.claimed_by,
                )  # fmt: skip
            row.status = self.calling
            row.claimed_by = node
            row.claimed_until = until
            claimed.append(row)
        session.flush()
        return claimed

    def renew(self, session: Session, *, node: str, ids: list[str], until: datetime) -> int:
        """Extend this node's leases on rows it is still calling; returns how many it holds."""
        if not ids:
            return 0
        result = session.execute(
            update(self.model)
            .where(
                self._col("id").in_(ids),
                self._col("claimed_by") == node,
                self._col("status") == self.calling,
            )
            .values(claimed_until=until)
        )
        return int(getattr(result, "rowcount", 0) or 0)

    def locked(self, session: Session, row_id: str) -> RowT:
        """The row, locked for update (NotFound naming `kind` when there is none)."""
        row = session.get(self.model, row_id, with_for_update=True)
        if row is None:
            raise NotFound(self.kind, row_id)
        return row

    def owned(self, row: RowT, node: str) -> bool:
        """True while `node` holds the row's lease (it is calling under this node's claim)."""
        return bool(row.status is self.calling and row.claimed_by == node)

    def is_final(self, status: enum.Enum) -> bool:
        """True for every state but waiting and calling."""
        return status is not self.waiting and status is not self.calling

    @staticmethod
    def release(row: RowT, status: enum.Enum) -> None:
        """Drop the lease and set the row's next state."""
        row.claimed_by = None
        row.claimed_until = None
        row.status = status
