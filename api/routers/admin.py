"""Who am I, tokens and the audit log."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import AwareDatetime, BaseModel, Field
from sqlalchemy import select

from api.auth import AdminDep, PrincipalDep, SupervisorDep
from api.deps import SQL_INTEGER_MAX, ServiceDep, SessionDep
from storage import audit
from storage.base import utcnow
from storage.models.auth import ApiToken, AuditEntry, Role
from storage.models.registry import Unit
from storage.tokens import create_token, list_tokens, revoke_token, token_id_of

router = APIRouter(prefix="/api/v1", tags=["admin"])


class Me(BaseModel):
    name: str
    role: Role
    unit_code: str | None


class TokenIn(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    role: Role
    unit_code: str | None = Field(default=None, max_length=40)
    expires_in_days: float | None = Field(
        default=None,
        gt=0,
        le=3650,
        description="lifetime; default LINKCALL_TOKEN_TTL_DAYS (0 there: no expiry)",
    )


class TokenOut(BaseModel):
    name: str
    role: Role
    unit_code: str | None
    expires_at: datetime | None = Field(description="null: the token never expires")
    token: str = Field(description="the secret; shown only in this response")


class TokenInfo(BaseModel):
    """A token as listed: never its secret (only a hash is stored)."""

    id: str
    name: str
    role: Role
    unit_code: str | None
    prefix: str = Field(
        description="the second part of the secret, lc_<prefix>_…, to tell them apart"
    )
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None
    expires_at: datetime | None = Field(description="null: the token never expires")


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
def post_token(
    body: TokenIn, session: SessionDep, service: ServiceDep, principal: AdminDep
) -> TokenOut:
    from api.problems import Problem

    lifetime = (
        timedelta(days=body.expires_in_days)
        if body.expires_in_days
        else service.settings.token_lifetime
    )
    expires_at = utcnow() + lifetime if lifetime else None
    code = body.unit_code
    if code and session.scalar(select(Unit.id).where(Unit.code == code)) is None:
        # A token for a unit that is not on the duty list (a typo, a unit not added yet) would
        # sign in to an empty view: refuse it as the CLI does.
        err = {"field": "unit_code", "message": f"no unit {code!r}", "type": "unknown_unit"}
        raise Problem(
            422, "Invalid token request", f"no unit {code!r}", kind="validation", errors=[err]
        )
    try:
        secret = create_token(
            session,
            name=body.name,
            role=body.role,
            unit_code=body.unit_code,
            expires_at=expires_at,
        )
    except ValueError as exc:
        raise Problem(422, "Invalid token request", str(exc), kind="validation") from exc
    # the token's id, as token.revoke records it (its name, up to 200 characters, did not fit
    # the 64 of resource_id: PostgreSQL refused the entry and the request failed 500)
    audit.record(
        session,
        principal,
        "token.create",
        "token",
        token_id_of(session, secret),
        detail={
            "name": body.name,
            "role": body.role.value,
            "unit_code": body.unit_code,
            "expires_at": expires_at.isoformat() if expires_at else None,
        },
    )
    return TokenOut(
        name=body.name,
        role=body.role,
        unit_code=body.unit_code,
        expires_at=expires_at,
        token=secret,
    )


@router.get("/tokens", response_model=list[TokenInfo], summary="API tokens, newest first (admin)")
def get_tokens(session: SessionDep, _principal: AdminDep) -> list[TokenInfo]:
    return [TokenInfo.model_validate(t, from_attributes=True) for t in list_tokens(session)]


@router.post(
    "/tokens/{token_id}/revoke", response_model=TokenInfo, summary="Revoke a token (admin)"
)
def post_revoke(token_id: str, session: SessionDep, principal: AdminDep) -> TokenInfo:
    revoke_token(session, token_id)
    audit.record(session, principal, "token.revoke", "token", token_id)
    return TokenInfo.model_validate(session.get(ApiToken, token_id), from_attributes=True)


@router.get("/audit", response_model=list[AuditOut], summary="The audit log, newest first")
def get_audit(
    session: SessionDep,
    _principal: SupervisorDep,
    resource_type: Annotated[str | None, Query(max_length=40)] = None,
    resource_id: Annotated[str | None, Query(max_length=64)] = None,
    actor: Annotated[str | None, Query(max_length=200)] = None,
    action: Annotated[
        str | None, Query(max_length=60, description="exact, or a prefix ending in '.'")
    ] = None,
    from_: Annotated[AwareDatetime | None, Query(alias="from")] = None,
    to: AwareDatetime | None = None,
    before_id: Annotated[
        int | None, Query(ge=1, le=SQL_INTEGER_MAX, description="entries older than this id")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[AuditOut]:
    stmt = select(AuditEntry).order_by(AuditEntry.id.desc()).limit(limit)
    if resource_type:
        stmt = stmt.where(AuditEntry.resource_type == resource_type)
    if resource_id:
        stmt = stmt.where(AuditEntry.resource_id == resource_id)
    if actor:
        stmt = stmt.where(AuditEntry.actor == actor)
    if action:
        if action.endswith("."):
            stmt = stmt.where(AuditEntry.action.startswith(action, autoescape=True))
        else:
            stmt = stmt.where(AuditEntry.action == action)
    if from_ is not None:
        stmt = stmt.where(AuditEntry.at >= from_)
    if to is not None:
        stmt = stmt.where(AuditEntry.at < to)
    if before_id is not None:
        stmt = stmt.where(AuditEntry.id < before_id)
    return [AuditOut.model_validate(e, from_attributes=True) for e in session.scalars(stmt)]
