"""Repository for the webhook outbox: events stored in the same transaction as what caused
them, claimed with a lease by the sender, kept until the receiver accepted them.

`body` is serialised once (compact JSON, keys sorted, UTF-8) and sent unchanged on every
attempt, so the signature of a retry equals the first one's. Claims are serialised like the
surveys' (storage/claims.py) so two nodes never send one event at the same time.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import and_, or_, select, update
from sqlalchemy.orm import Session

from storage.base import new_id
from storage.claims import serialise_claims
from storage.models.reminders import WebhookOutbox

log = logging.getLogger(__name__)

CLAIM_LOCK_KEY = 0x6C63_7768  # "lcwh"


@dataclass(frozen=True, slots=True)
class OutboxEvent:
    """One stored event."""

    id: str
    event: str
    body: str
    attempts: int
    created_at: datetime
    next_attempt_at: datetime
    delivered_at: datetime | None
    last_error: str | None
    dedupe_key: str | None


def _event(row: WebhookOutbox) -> OutboxEvent:
    return OutboxEvent(
        row.id, row.event, row.body, row.attempts, row.created_at, row.next_attempt_at,
        row.delivered_at, row.last_error, row.dedupe_key,
    )  # fmt: skip


def enqueue(
    session: Session,
    event: str,
    data: dict[str, Any],
    *,
    now: datetime,
    dedupe_key: str | None = None,
) -> OutboxEvent | None:
    """Store one event due now; None when an event with `dedupe_key` already exists.

    The body is `{"id", "event", "created_at", "data"}`. Concurrent enqueues of one
    `dedupe_key` are settled by its unique constraint (the caller's transaction fails and is
    retried by its job), so an event meant once is stored once.
    """
    if dedupe_key is not None:
        existing = session.scalar(
            select(WebhookOutbox).where(WebhookOutbox.dedupe_key == dedupe_key)
        )
        if existing is not None:
            return None
    event_id = new_id()
    envelope = {
        "id": event_id,
        "event": event,
        "created_at": now.astimezone(UTC).isoformat(),
        "data": data,
    }
    body = json.dumps(envelope, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    row = WebhookOutbox(
        id=event_id, event=event, dedupe_key=dedupe_key, body=body, created_at=now,
        next_attempt_at=now, data=data,
    )  # fmt: skip
    session.add(row)
    session.flush()
    log.info("webhook event %s %s queued", event, event_id)
    return _event(row)


def claim_due(
    session: Session, *, node: str, now: datetime, lease: timedelta, limit: int
) -> list[OutboxEvent]:
    """Claim up to `limit` undelivered events due now for `node` until `now + lease`."""
    if limit <= 0:
        return []
    serialise_claims(session, CLAIM_LOCK_KEY, WebhookOutbox.__table__, "attempts")  # type: ignore[arg-type]
    free = or_(WebhookOutbox.claimed_until.is_(None), WebhookOutbox.claimed_until <= now)
    stmt = (
        select(WebhookOutbox)
        .where(
            and_(WebhookOutbox.delivered_at.is_(None), WebhookOutbox.next_attempt_at <= now), free
        )
        .order_by(WebhookOutbox.next_attempt_at, WebhookOutbox.created_at, WebhookOutbox.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    out = []
    for row in session.scalars(stmt):
        row.claimed_by = node
        row.claimed_until = now + lease
        out.append(_event(row))
    session.flush()
    return out


def mark_delivered(session: Session, event_id: str, *, now: datetime) -> None:
    """The receiver accepted the event: never sent again."""
    session.execute(
        update(WebhookOutbox)
        .where(WebhookOutbox.id == event_id)
        .values(
            delivered_at=now, attempts=WebhookOutbox.attempts + 1, claimed_by=None,
            claimed_until=None, last_error=None,
        )
    )  # fmt: skip


def mark_failed(session: Session, event_id: str, *, error: str, next_attempt_at: datetime) -> None:
    """The attempt failed: count it, keep the reason, send again at `next_attempt_at`."""
    session.execute(
        update(WebhookOutbox)
        .where(WebhookOutbox.id == event_id, WebhookOutbox.delivered_at.is_(None))
        .values(
            attempts=WebhookOutbox.attempts + 1, last_error=error[:200],
            next_attempt_at=next_attempt_at, claimed_by=None, claimed_until=None,
        )
    )  # fmt: skip


def list_events(
    session: Session, *, event: str | None = None, undelivered_only: bool = False
) -> list[OutboxEvent]:
    """Stored events, oldest first."""
    stmt = select(WebhookOutbox).order_by(WebhookOutbox.created_at, WebhookOutbox.id)
    if event is not None:
        stmt = stmt.where(WebhookOutbox.event == event)
    if undelivered_only:
        stmt = stmt.where(WebhookOutbox.delivered_at.is_(None))
    return [_event(r) for r in session.scalars(stmt)]
