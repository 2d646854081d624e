"""Liveness and readiness.

/readyz says ready or not to anyone (a load balancer has no token); the details of each check
(PBX address, SIP user, disk paths) only to a caller with a valid token.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from api.deps import ServiceDep
from storage.engine import session_scope
from storage.tokens import verify_token

log = logging.getLogger(__name__)
router = APIRouter(tags=["health"])


@router.get("/healthz", summary="The process is alive")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


def _authenticated(request: Request, service: ServiceDep) -> bool:
    scheme, _, secret = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not secret.strip():
        return False
    try:
        with session_scope(service.session_factory) as session:
            return verify_token(session, secret.strip()) is not None
    except Exception:  # the database may be the very thing that is down
        log.warning("readyz: could not check the token", exc_info=True)
        return False


@router.get(
    "/readyz",
    summary="The service can take work: database and components healthy (details need a token)",
)
def readyz(request: Request, service: ServiceDep) -> JSONResponse:
    checks = service.readiness()
    ready = all(h.ok for h in checks.values())
    detailed = _authenticated(request, service)
    body: dict[str, Any] = {
        "status": "ready" if ready else "not ready",
        "checks": {
            name: ({"ok": h.ok, "detail": h.detail} if detailed else {"ok": h.ok})
            for name, h in checks.items()
        },
    }
    if ready:
        return JSONResponse(body)
    body.update(
        {"type": "https://linkcall.invalid/problems/not-ready", "title": "Not ready", "status": 503}
    )
    return JSONResponse(body, status_code=503, media_type="application/problem+json")
