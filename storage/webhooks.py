"""Repository for the webhook outbox: events stored in the same transaction as what caused
them, claimed with a lease by the sender, kept until the receiver accepted them.

`body` is serialised once (compact JSON, keys sorted, UTF-8) and sent unchanged on every
attempt, so the signature of a retry equals the first one's. Events are claimed by the lease
helper of the claimed tables (storage/claims.py `OUTBOX`, as the surveys are), so two nodes
never send one event at the same time:

    pending ──claim (due)──▶ sending ──▶ pending (retry at `next_attempt_at`) | delivered
    sending ──lease expired (the sender died or stalled)──▶ claimed again by another node
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from storage.base import new_id
from storage.claims import LeaseTable
from storage.models.reminders import OutboxStatus, WebhookOutbox

log = logging.getLogger(__name__)

CLAIM_LOCK_KEY = 0x6C63_7768  # "lcwh"
OUTBOX = LeaseTable(
    WebhookOutbox, CLAIM_LOCK_KEY, "attempts", waiting=OutboxStatus.PENDING,
    calling=OutboxStatus.SENDING, due_column="next_attempt_at", kind="webhook event", log=log,
    log_name="webhook event", order_columns=("created_at",),
)  # fmt: skip


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
    """Claim up to `limit` undelivered events due now for `node` until `now + lease`, oldest
    due first. Use a fresh session: the claim lock must be its first statement."""
    return [_event(r) for r in OUTBOX.claim_due(session, node=node, now=now, lease=lease,
                                                limit=limit)]  # fmt: skip


def renew(session: Session, *, node: str, event_ids: list[str], until: datetime) -> int:
    """Extend this node's leases on events it is still sending; returns how many it holds."""
    return OUTBOX.renew(session, node=node, ids=event_ids, until=until)


def mark_delivered(session: Session, event_id: str, *, now: datetime) -> None:
    """The receiver accepted the event: never sent again (also when the lease was lost: the
    receiver has it)."""
    row = OUTBOX.locked(session, event_id)
    if row.status is OutboxStatus.DELIVERED:
        return
    OUTBOX.release(row, OutboxStatus.DELIVERED)
    row.delivered_at, row.attempts, row.last_error = now, row.attempts + 1, None
    session.flush()


def mark_failed(
    session: Session, event_id: str, *, node: str, error: str, next_attempt_at: datetime
) -> None:
    """The attempt failed: count it, keep the reason, send again at `next_attempt_at`. A
    delivered event stays delivered; one whose lease `node` lost is left to its new sender."""
    row = OUTBOX.locked(session, event_id)
    if row.status is OutboxStatus.DELIVERED:
        return
    row.attempts, row.last_error = row.attempts + 1, error[:200]
    if OUTBOX.owned(row, node):
        OUTBOX.release(row, OutboxStatus.PENDING)
        row.next_attempt_at = next_attempt_at
    else:
        log.warning("webhook event %s: attempt failed after the lease of %s was lost",
                    event_id, node)  # fmt: skip
    session.flush()


def list_events(
    session: Session, *, event: str | None = None, undelivered_only: bool = False
) -> list[OutboxEvent]:
    """Stored events, oldest first."""
    stmt = select(WebhookOutbox).order_by(WebhookOutbox.created_at, WebhookOutbox.id)
    if event is not None:
        stmt = stmt.where(WebhookOutbox.event == event)
    if undelivered_only:
        stmt = stmt.where(WebhookOutbox.status != OutboxStatus.DELIVERED)
    return [_event(r) for r in session.scalars(stmt)]
