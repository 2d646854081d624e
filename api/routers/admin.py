"""Who am I, tokens and the audit log."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field
from sqlalchemy import select

from api.auth import AdminDep, PrincipalDep, SupervisorDep
from api.deps import SessionDep
from storage import audit
from storage.models.auth import AuditEntry, Role
from storage.tokens import create_token

router = APIRouter(prefix="/api/v1", tags=["admin"])


class Me(BaseModel):
    name: str
    role: Role
    unit_code: str | None


class TokenIn(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    role: Role
    unit_code: str | None = Field(default=None, max_length=40)


class TokenOut(BaseModel):
    name: str
    role: Role
    unit_code: str | None
    token: str = Field(description="the secret; shown only in this response")


class AuditOut(BaseModel):
    id: int
    at: datetime
    actor: str
    role: str
    action: str
    resource_type: str
    resource_id: str
    detail: dict[str, object]


@router.get("/me", response_model=Me, summary="The caller's identity")
def me(principal: PrincipalDep) -> Me:
    return Me(name=principal.name, role=principal.role, unit_code=principal.unit_code)


@router.post("/tokens", response_model=TokenOut, status_code=201, summary="Create an API token")
def post_token(body: TokenIn, session: SessionDep, principal: AdminDep) -> TokenOut:
    from api.problems import Problem

    try:
        secret = create_token(session, name=body.name, role=body.role, unit_code=body.unit_code)
    except ValueError as exc:
        raise Problem(422, "Invalid token request", str(exc), kind="validation") from exc
    audit.record(
        session,
        principal,
        "token.create",
        "token",
        body.name,
        detail={"role": body.role.value, "unit_code": body.unit_code},
    )
    return TokenOut(name=body.name, role=body.role, unit_code=body.unit_code, token=secret)


@router.get("/audit", response_model=list[AuditOut], summary="The audit log, newest first")
def get_audit(
    session: SessionDep,
    _principal: SupervisorDep,
    resource_type: str | None = None,
    resource_id: str | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[AuditOut]:
    stmt = select(AuditEntry).order_by(AuditEntry.id.desc()).limit(limit)
    if resource_type:
        stmt = stmt.where(AuditEntry.resource_type == resource_type)
    if resource_id:
        stmt = stmt.where(AuditEntry.resource_id == resource_id)
    return [AuditOut.model_validate(e, from_attributes=True) for e in session.scalars(stmt)]
