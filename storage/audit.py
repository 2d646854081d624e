"""Repository for the audit log."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from storage.models.auth import AuditEntry
from storage.tokens import Principal


def record(
    session: Session,
    principal: Principal | None,
    action: str,
    resource_type: str,
    resource_id: str,
    *,
    detail: dict[str, Any] | None = None,
    client: str | None = None,
) -> AuditEntry:
    """Append one audit entry (flushed with the caller's unit of work)."""
    entry = AuditEntry(
        token_id=principal.token_id if principal else None,
        actor=principal.name if principal else "system",
        role=principal.role.value if principal else "system",
        action=action,
        resource_type=resource_type,
        resource_id=resource_id,
        detail=detail or {},
        client=client,
    )
    session.add(entry)
    session.flush()
    return entry


def entries_for(session: Session, resource_type: str, resource_id: str) -> list[AuditEntry]:
    """Every audit entry about one resource, oldest first."""
    stmt = (
        select(AuditEntry)
        .where(AuditEntry.resource_type == resource_type, AuditEntry.resource_id == resource_id)
        .order_by(AuditEntry.id)
    )
    return list(session.scalars(stmt))
