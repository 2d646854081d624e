"""Searching the calls the service carried: filters and a keyset cursor (newest first).

Numbers are matched on what the call records store (E.164 or extension digits, see
calls/records.py): equal, or ending with given digits. Nothing here logs a number.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, Select, and_, or_, select
from sqlalchemy.orm import Session

from storage.models.call_records import Attempt, Call, CallKind, CallState, Leg

_CALL_ID = re.compile(r"[0-9A-Za-z_-]{1,32}")  # what storage.base.new_id makes, and no more


class BadCursor(ValueError):
    """The cursor was not made by `encode_cursor`."""


@dataclass(frozen=True, slots=True)
class CallFilter:
    """What to look for; None = any."""

    kind: CallKind | None = None
    state: CallState | None = None
    unit_code: str | None = None
    incident_id: str | None = None
    interrupted: bool | None = None
    created_from: datetime | None = None
    created_to: datetime | None = None
    number: str | None = None
    number_suffix: bool = False


def encode_cursor(call: Call) -> str:
    """An opaque position after `call` in the newest-first order."""
    raw = f"{call.created_at.isoformat()}|{call.id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        at, _, call_id = base64.urlsafe_b64decode(padded).decode().partition("|")
        if not _CALL_ID.fullmatch(call_id):  # a NUL in it failed PostgreSQL's query (500)
            raise ValueError(f"not a call id: {call_id!r}")
        return datetime.fromisoformat(at), call_id
    except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
        raise BadCursor(cursor) from exc


def _number_clause(number: str, suffix: bool) -> ColumnElement[bool]:
    if suffix:
        legs = select(Leg.call_id).where(Leg.number.like(f"%{number}"))
        attempts = select(Attempt.call_id).where(Attempt.number.like(f"%{number}"))
    else:
        legs = select(Leg.call_id).where(Leg.number == number)
        attempts = select(Attempt.call_id).where(Attempt.number == number)
    return or_(Call.id.in_(legs), Call.id.in_(attempts))


def _statement(f: CallFilter) -> Select[Call]:
    stmt = select(Call)
    equal = {
        Call.kind: f.kind,
        Call.state: f.state,
        Call.unit_code: f.unit_code,
        Call.incident_id: f.incident_id,
        Call.interrupted: f.interrupted,
    }
    for column, value in equal.items():
        if value is not None:
            stmt = stmt.where(column == value)
    if f.created_from is not None:
        stmt = stmt.where(Call.created_at >= f.created_from)
    if f.created_to is not None:
        stmt = stmt.where(Call.created_at < f.created_to)
    if f.number:
        stmt = stmt.where(_number_clause(f.number, f.number_suffix))
    return stmt


def search_calls(
    session: Session,
    f: CallFilter,
    *,
    limit: int,
    cursor: str | None = None,
    offset: int = 0,
) -> tuple[list[Call], str | None]:
    """Up to `limit` calls, newest first, after `cursor`; and the cursor of the next page (None
    when this is the last). BadCursor for a cursor this function did not make."""
    stmt = _statement(f).order_by(Call.created_at.desc(), Call.id.desc())
    if cursor:
        at, call_id = _decode_cursor(cursor)
        stmt = stmt.where(or_(Call.created_at < at, and_(Call.created_at == at, Call.id < call_id)))
    rows = list(session.scalars(stmt.limit(limit + 1).offset(offset)))
    more = len(rows) > limit
    rows = rows[:limit]
    return rows, (encode_cursor(rows[-1]) if more and rows else None)
