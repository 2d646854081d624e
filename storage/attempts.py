"""Attempts of a key-prompt call kept on a leased row (surveys, roster reminders): store one
finished call, and store the next step decided for the row (release its lease: waiting again
with the next attempt's time, or a final state with its reason).

The decision itself is not made here: calls/ asks callflows.survey.plan_next and hands it back.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol, TypeVar

from sqlalchemy.orm import Session

from storage.claims import LeasedRow, LeaseTable


@dataclass(frozen=True, slots=True)
class AttemptValues:
    """What the caller observed on one call (outcome is a callflows.ivr.CallOutcome value)."""

    outcome: str
    key: str | None
    digits: str
    started_at: datetime
    ended_at: datetime
    recording_id: str | None = None
    sip_reason: str | None = None


@dataclass(frozen=True, slots=True)
class AttemptInfo:
    """One call placed for a row, as the API shows it."""

    attempt_no: int
    node: str
    outcome: str
    sip_reason: str | None
    key: str | None
    digits: str
    recording_id: str | None
    started_at: datetime
    ended_at: datetime


def attempt_infos(rows: list[Any]) -> tuple[AttemptInfo, ...]:
    """The attempt rows of a row (an attempt model's rows, oldest first) as plain values."""
    return tuple(
        AttemptInfo(
            a.attempt_no, a.node, a.outcome, a.sip_reason, a.key, a.digits, a.recording_id,
            a.started_at, a.ended_at,
        )
        for a in rows
    )  # fmt: skip


class AttemptedRow(LeasedRow, Protocol):
    """A leased row with attempt rows (oldest first), their count and the last outcome."""

    attempt_rows: list[Any]
    attempts: int
    last_outcome: str | None
    next_attempt_at: datetime | None
    finished_at: datetime | None
    end_reason: str | None


RowT = TypeVar("RowT", bound=AttemptedRow)
History = list[tuple[str, datetime, str | None]]
"""Each attempt's outcome, end and `sip_reason`, oldest first."""
"""Every attempt's (outcome, ended_at), oldest first."""


def record_attempt(
    session: Session,
    table: LeaseTable[RowT],
    attempt: Callable[..., object],
    row_id: str,
    *,
    node: str,
    attempt_no: int,
    values: AttemptValues,
) -> tuple[RowT, bool, History]:
    """Store one finished call as an `attempt` row (the attempt model). Returns the row, whether
    it is still ours, and its history.

    "Still ours": the row is calling under this node's lease; if not (the lease was lost), the
    attempt is stored but the caller must not change the row's status.
    """
    row = table.locked(session, row_id)
    row.attempt_rows.append(
        attempt(
            attempt_no=attempt_no,
            node=node,
            outcome=values.outcome,
            sip_reason=values.sip_reason,
            key=values.key,
            digits=values.digits,
            recording_id=values.recording_id,
            started_at=values.started_at,
            ended_at=values.ended_at,
        )
    )
    row.attempts = len(row.attempt_rows)
    row.last_outcome = values.outcome
    session.flush()
    owned = table.owned(row, node)
    if not owned and table.log is not None:
        table.log.warning(
            "%s %s: attempt stored after the lease of %s was lost", table.log_name, row_id, node
        )
    return row, owned, [(a.outcome, a.ended_at, a.sip_reason) for a in row.attempt_rows]


def settle(
    session: Session,
    table: LeaseTable[RowT],
    row_id: str,
    *,
    status: enum.Enum,
    now: datetime,
    reason: str,
    next_attempt_at: datetime | None = None,
) -> RowT:
    """Release the lease and store the decision: waiting again at `next_attempt_at`, or a final
    `status` (finished now, ended for `reason`). Flushes."""
    row = table.locked(session, row_id)
    table.release(row, status)
    row.next_attempt_at = next_attempt_at if status is table.waiting else None
    if table.is_final(status):
        row.finished_at = now
        row.end_reason = reason
    session.flush()
    return row
