"""Check a phone number against the one dial policy without storing or dialling anything.

The console checks roster numbers as they are typed with the same rules the API applies when
the roster is saved (`registry.numbers.DialPolicy.check`). Any signed-in role may ask; the number
is never logged.
"""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, Field

from api.auth import PrincipalDep
from api.deps import ServiceDep
from registry.numbers import DialRefused, NumberError

router = APIRouter(prefix="/api/v1/numbers", tags=["duty registry"])


class NumberCheckIn(BaseModel):
    number: str = Field(max_length=200, examples=["0833-4212345"])
    field: str | None = Field(default=None, max_length=100, examples=["staff[0].phone"])


class NumberCheckOut(BaseModel):
    """`valid` false: `reason` says why (`type` InvalidNumber or DialRefused), as a save would."""

    field: str | None
    valid: bool
    canonical: str | None = Field(default=None, description="what would be stored")
    display: str | None = None
    kind: str | None = None
    type: str | None = None
    reason: str | None = None


@router.post(
    "/check",
    response_model=NumberCheckOut,
    summary="Would this number be accepted as a duty phone? (the dial policy; nothing stored)",
)
def check_number(
    body: NumberCheckIn, service: ServiceDep, _principal: PrincipalDep
) -> NumberCheckOut:
    try:
        number = service.settings.dial_policy.check(body.number, field=body.field)
    except NumberError as exc:
        kind = "DialRefused" if isinstance(exc, DialRefused) else "InvalidNumber"
        return NumberCheckOut(field=body.field, valid=False, type=kind, reason=exc.reason)
    return NumberCheckOut(
        field=body.field,
        valid=True,
        canonical=number.canonical,
        display=number.display,
        kind=number.kind.value,
    )
