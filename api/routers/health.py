"""Liveness and readiness."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from api.deps import ServiceDep

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="The process is alive")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", summary="The service can take work: database and components healthy")
def readyz(service: ServiceDep) -> JSONResponse:
    checks = service.readiness()
    ready = all(h.ok for h in checks.values())
    body: dict[str, Any] = {
        "status": "ready" if ready else "not ready",
        "checks": {name: {"ok": h.ok, "detail": h.detail} for name, h in checks.items()},
    }
    if ready:
        return JSONResponse(body)
    body.update(
        {"type": "https://linkcall.invalid/problems/not-ready", "title": "Not ready", "status": 503}
    )
    return JSONResponse(body, status_code=503, media_type="application/problem+json")
