"""Audit entries from request handlers (who, from where)."""

from __future__ import annotations

from typing import Any

from fastapi import Request
from sqlalchemy.orm import Session

from storage import audit
from storage.tokens import Principal


def record(
    session: Session,
    request: Request,
    principal: Principal,
    action: str,
    resource_type: str,
    resource_id: str,
    detail: dict[str, Any] | None = None,
) -> None:
    """Append an audit entry for this request (committed with the request's session)."""
    client = request.client.host if request.client else None
    audit.record(
        session, principal, action, resource_type, resource_id, detail=detail, client=client
    )
