"""Repository for API tokens: create (secret shown once), verify, revoke."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from storage.base import utcnow
from storage.errors import NotFound
from storage.models.auth import ApiToken, Role

TOKEN_PREFIX = "lc"
LAST_USED_RESOLUTION = timedelta(minutes=1)


@dataclass(frozen=True, slots=True)
class Principal:
    """The authenticated caller of an API request."""

    token_id: str
    name: str
    role: Role
    unit_code: str | None


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def create_token(
    session: Session,
    *,
    name: str,
    role: Role,
    unit_code: str | None,
    expires_at: datetime | None = None,
) -> str:
    """Store a new token and return its secret (the only time it is ever visible). It stops
    working at `expires_at` (aware; None: it never expires)."""
    if expires_at is not None and expires_at.tzinfo is None:
        raise ValueError("expires_at must be timezone-aware")
    if role is Role.UNIT and not unit_code:
        raise ValueError("a unit token needs a unit code")
    if role is not Role.UNIT and unit_code:
        raise ValueError("only unit tokens are scoped to a unit")
    prefix = secrets.token_hex(4)
    secret = f"{TOKEN_PREFIX}_{prefix}_{secrets.token_urlsafe(32)}"
    session.add(
        ApiToken(
            name=name,
            role=role,
            unit_code=unit_code,
            prefix=prefix,
            secret_hash=_hash(secret),
            expires_at=expires_at,
        )
    )
    session.flush()
    return secret


def verify_token(session: Session, secret: str) -> Principal | None:
    """The principal for a presented secret, or None when unknown, revoked or expired."""
    digest = _hash(secret)
    row = session.scalar(select(ApiToken).where(ApiToken.secret_hash == digest))
    if row is None or row.revoked_at is not None:
        return None
    if not hmac.compare_digest(row.secret_hash, digest):
        return None
    now = utcnow()
    if row.expires_at is not None and row.expires_at <= now:
        return None
    if row.last_used_at is None or now - row.last_used_at > LAST_USED_RESOLUTION:
        row.last_used_at = now  # at most one write a minute per token, not one per request
    return Principal(token_id=row.id, name=row.name, role=row.role, unit_code=row.unit_code)


def token_id_of(session: Session, secret: str) -> str:
    """The id of the stored token whose secret this is (NotFound when none is)."""
    token_id = session.scalar(select(ApiToken.id).where(ApiToken.secret_hash == _hash(secret)))
    if token_id is None:
        raise NotFound("token", secret.rsplit("_", 1)[0])
    return token_id


def revoke_token(session: Session, token_id: str) -> None:
    """Revoke a token by id; it stops working at once."""
    row = session.get(ApiToken, token_id)
    if row is None:
        raise NotFound("token", token_id)
    if row.revoked_at is None:  # revoking twice keeps the first time
        row.revoked_at = utcnow()


def parse_lifetime(text: str) -> timedelta | None:
    """`90d`, `12h`, `30m` or `never` (None); ValueError otherwise."""
    value = text.strip().lower()
    if value == "never":
        return None
    units = {"d": "days", "h": "hours", "m": "minutes"}
    number, unit = value[:-1], value[-1:]
    if unit not in units or not number.isdigit() or int(number) < 1:
        raise ValueError(f"a lifetime is like 90d, 12h, 30m or never, not {text!r}")
    return timedelta(**{units[unit]: int(number)})


def list_tokens(session: Session) -> list[ApiToken]:
    """All tokens, newest first (secrets are not stored, so none are shown)."""
    return list(session.scalars(select(ApiToken).order_by(ApiToken.created_at.desc())))
