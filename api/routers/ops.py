"""Operations status for the console: free disk, the last hash verification, retention."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from api.auth import DispatcherDep
from api.deps import ServiceDep

router = APIRouter(prefix="/api/v1/ops", tags=["operations"])


@router.get("/status", summary="Free disk, the last recording verification, retention")
def ops_status(service: ServiceDep, principal: DispatcherDep) -> dict[str, Any]:
    keeper = service.evidence
    status: dict[str, Any] = keeper.status() if keeper is not None else {}
    telephony = service.telephony
    if telephony is not None:
        health = telephony.health()
        status["sip"] = {"ok": health.ok, "detail": health.detail}
    return status
