"""Bearer-token authentication and role checks."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from api.deps import SessionDep
from api.problems import Problem
from api.rate_limit import DialLimiter, retry_after
from storage.models.auth import Role
from storage.tokens import Principal, verify_token

_bearer = HTTPBearer(auto_error=False, description="a token made with `linkcall tokens create`")
_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="linkcall"'}


async def presented_token(
    creds: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> str:
    """The bearer secret the request presents (not checked yet), or a 401 problem."""
    if creds is None or creds.scheme.lower() != "bearer" or not creds.credentials:
        raise Problem(
            401,
            "Authentication required",
            "send Authorization: Bearer <token>",
            kind="unauthenticated",
            headers=_CHALLENGE,
        )
    return creds.credentials


TokenDep = Annotated[str, Depends(presented_token)]


def authenticate(
    session: Session, request: Request, secret: str, roles: frozenset[Role] | None = None
) -> Principal:
    """The caller behind the secret (401 problem otherwise), holding one of `roles` when given
    (403 problem otherwise). SQL: call it in a worker thread."""
    principal = verify_token(session, secret)
    if principal is None:
        raise Problem(
            401,
            "Invalid token",
            "the token is unknown, revoked or expired",
            kind="unauthenticated",
            headers=_CHALLENGE,
        )
    if session.dirty:
        session.commit()  # keeps last_used_at (at most once a minute per token)
    request.state.principal = principal
    if roles is not None and principal.role not in roles:
        names = ", ".join(sorted(r.value for r in roles))
        raise Problem(403, "Forbidden", f"this needs one of the roles: {names}", kind="forbidden")
    return principal


def current_principal(request: Request, session: SessionDep, secret: TokenDep) -> Principal:
    """The caller behind the bearer token, or a 401 problem."""
    principal = authenticate(session, request, secret)
    session.commit()  # ends the read: the handler may write through other sessions (SQLite)
    return principal


PrincipalDep = Annotated[Principal, Depends(current_principal)]


def require_roles(*roles: Role) -> Callable[[Principal], Awaitable[Principal]]:
    """A dependency that lets only the given roles through (403 problem otherwise)."""
    allowed = frozenset(roles)

    async def check(principal: PrincipalDep) -> Principal:  # no I/O: no worker thread
        if principal.role not in allowed:
            names = ", ".join(sorted(r.value for r in allowed))
            raise Problem(
                403, "Forbidden", f"this needs one of the roles: {names}", kind="forbidden"
            )
        return principal

    return check


def ensure_unit_scope(principal: Principal, unit_code: str) -> None:
    """Unit tokens may act only on their own unit; admins on any. 403 otherwise."""
    if principal.role is Role.ADMIN:
        return
    if principal.role is Role.UNIT and principal.unit_code == unit_code:
        return
    raise Problem(
        403, "Forbidden", f"this token may not act for unit {unit_code!r}", kind="forbidden"
    )


AdminDep = Annotated[Principal, Depends(require_roles(Role.ADMIN))]
SupervisorDep = Annotated[Principal, Depends(require_roles(Role.SUPERVISOR, Role.ADMIN))]
DISPATCH_ROLES = frozenset({Role.DISPATCHER, Role.SUPERVISOR, Role.ADMIN})
DispatcherDep = Annotated[Principal, Depends(require_roles(*DISPATCH_ROLES))]


def take_dial_quota(request: Request, principal: Principal) -> None:
    """Count one call placed through the API against the token's and the service's dial rate
    (LINKCALL_DIAL_RATE); 429 problem with Retry-After when either is spent, nothing dialled."""
    limiter: DialLimiter = request.app.state.dial_limiter
    wait = limiter.acquire(principal.token_id)
    if wait > 0:
        after = retry_after(wait)
        raise Problem(
            429,
            "Too many calls",
            f"the dial rate limit is reached; try again in {after} s",
            kind="rate-limited",
            headers={"Retry-After": after},
            retry_after_s=int(after),
        )
