"""Three-way bridged calls: create, read, control (issue 5).

The handlers are plain functions, so FastAPI runs them in its worker threads with their database
session there; they reach the call manager on the event loop with `anyio.from_thread.run`. No
SQL ever runs on the event loop (where the 20 ms media tick and every call flow live).

Creating a bridge is the exception, because a dispatcher waits for it and every hop between the
loop and a worker thread waits for a busy loop and the GIL (issue 17; api/deps.py): its handler
is `async`, does all its SQL in one worker-thread call and one transaction, and starts the
dialling on the loop itself.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Annotated, Any, Literal

import httpx
from anyio import from_thread, to_thread
from fastapi import APIRouter, Header, Path, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, joinedload

from api import audit_ctx
from api.auth import DISPATCH_ROLES, DispatcherDep, TokenDep, authenticate, take_dial_quota
from api.deps import ServiceDep, SessionDep
from api.forwarding import FORWARD_TIMEOUT_S, FORWARDED_HEADER
from api.problems import Problem
from api.service import Service
from api.settings import Settings
from callflows.destination import Destination
from callflows.errors import EventError
from callflows.events import (
    AddParty,
    EndBridge,
    Event,
    HangupParty,
    HoldParty,
    MuteParty,
    RedialParty,
    ReplaceUnit,
    Role,
    UnholdParty,
    UnmuteParty,
)
from calls.manager import BridgeRequest, CallManager, CallNotActive
from registry.duty import unit_dial_list
from registry.numbers import NumberError, PhoneNumber
from storage import nodes as node_repo
from storage.base import utcnow
from storage.errors import NotFound
from storage.models.call_records import Call, CallKind, CallState

log = logging.getLogger(__name__)
router = APIRouter(prefix="/api/v1/bridges", tags=["bridges"])


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class NumberRef(_Strict):
    number: str = Field(min_length=1, max_length=40, examples=["13812345678"])


class CallRef(_Strict):
    call_id: str = Field(min_length=1, max_length=64)


class UnitRef(_Strict):
    unit_code: str = Field(min_length=1, max_length=40)


class BridgeIn(_Strict):
    caller: NumberRef | CallRef
    dispatcher: NumberRef
    unit: UnitRef | NumberRef
    incident_id: str | None = Field(default=None, max_length=32)


class AttemptOut(BaseModel):
    number: str
    label: str | None
    result: str | None
    sip_status: int | None
    started_at: datetime
    ended_at: datetime | None
    extension: str | None = None
    extension_sent_at: datetime | None = None
    confirmed_at: datetime | None = None


class LegOut(BaseModel):
    role: str
    number: str | None
    state: str
    muted: bool
    held: bool
    attempts: list[AttemptOut]
    connected_at: datetime | None
    ended_at: datetime | None
    end_reason: str | None
    recovery: str | None = Field(
        default=None,
        description="after a crash: what the restarted service did to the party's SIP dialog "
        "(`bye 200`: it was hung up; `bye timeout`: no answer to the BYE)",
    )


class BridgeOut(BaseModel):
    id: str
    state: str
    legs: list[LegOut]
    recording_id: str | None  # the first segment
    # every segment in order: a call carried on after a crash has a second (docs/callflows.md)
    recordings: list[str] = []
    incident_id: str | None
    unit_code: str | None
    created_at: datetime
    connected_at: datetime | None
    ended_at: datetime | None
    end_reason: str | None
    interrupted: bool
    # the silence a crash cost a call that survived it: end of the audio before, parties joined
    gap_started_at: datetime | None = None
    resumed_at: datetime | None = None


def bridge_out(call: Call) -> BridgeOut:
    """The API view of a bridge row."""
    legs = []
    for leg in call.legs:
        attempts = [
            AttemptOut(
                number=a.number,
                label=a.label,
                result=a.result,
                sip_status=a.sip_status,
                started_at=a.started_at,
                ended_at=a.ended_at,
                extension=a.extension,
                extension_sent_at=a.extension_sent_at,
                confirmed_at=a.confirmed_at,
            )
            for a in call.attempts
            if a.role == leg.role
        ]
        legs.append(
            LegOut(
                role=leg.role,
                number=leg.number,
                state=leg.state,
                muted=leg.muted,
                held=leg.held,
                attempts=attempts,
                connected_at=leg.connected_at,
                ended_at=leg.ended_at,
                end_reason=leg.end_reason,
                recovery=leg.recovery,
            )
        )
    return BridgeOut(
        id=call.id,
        state=call.state.value,
        legs=legs,
        recording_id=call.recording.id if call.recording else None,
        recordings=[r.id for r in call.recordings],
        incident_id=call.incident_id,
        unit_code=call.unit_code,
        created_at=call.created_at,
        connected_at=call.connected_at,
        ended_at=call.ended_at,
        end_reason=call.end_reason,
        interrupted=call.interrupted,
        gap_started_at=call.gap_started_at,
        resumed_at=call.resumed_at,
    )


def _manager(service: ServiceDep) -> CallManager:
    manager, telephony = service.calls, service.telephony
    if manager is None or telephony is None or not telephony.health().ok:
        detail = "telephony is not configured" if telephony is None else telephony.health().detail
        raise Problem(503, "Telephony unavailable", detail, kind="telephony-unavailable")
    return manager


def _dialable(raw: str, field: str, settings: Settings) -> PhoneNumber:
    try:
        return settings.dial_policy.check(raw, field=field)
    except NumberError as exc:
        err = {"field": field, "message": exc.reason, "type": type(exc).__name__}
        raise Problem(
            422, "Number refused", f"{field}: {exc.reason}", kind="validation", errors=[err]
        ) from exc


def _unit_dial_list(
    session: Session, code: str, settings: Settings, field: str = "unit"
) -> tuple[list[str | Destination], dict[str, str]]:
    try:
        dial = unit_dial_list(session, code, utcnow(), settings.zone, settings.dial_policy)
    except NotFound as exc:
        err = {
            "field": f"{field}.unit_code",
            "message": f"unknown unit {code!r}",
            "type": "unknown",
        }
        raise Problem(
            422, "Unknown unit", f"unit {code!r} does not exist", kind="validation", errors=[err]
        ) from exc
    if not dial.active:
        err = {"field": f"{field}.unit_code", "message": f"unit {code!r} is deactivated",
               "type": "inactive"}  # fmt: skip
        raise Problem(422, "Unit deactivated", err["message"], kind="validation", errors=[err])
    numbers: list[str | Destination] = []
    labels: dict[str, str] = {}
    for i, target in enumerate(dial.targets):
        if target.dial is None:
            where = f"{field}.dial_list[{i}]"
            reason = target.refused or "refused"
            err = {"field": where, "message": reason, "type": "DialRefused"}
            raise Problem(
                422, "Number refused", f"{where}: {reason}", kind="validation",
                errors=[err],
            )  # fmt: skip
        numbers.append(Destination(target.dial, target.extension))
        labels[target.dial] = target.label
    if not numbers:
        raise Problem(
            422,
            "No number for the unit",
            f"unit {code!r} has no roster this week and no fallback number",
            kind="validation",
        )
    return numbers, labels


def _unit_numbers(
    unit: UnitRef | NumberRef, session: Session, settings: Settings, field: str = "unit"
) -> tuple[list[str | Destination], dict[str, str], str | None]:
    """A unit's dial list (from its roster) or one number; (numbers, labels, unit code)."""
    if isinstance(unit, UnitRef):
        numbers, labels = _unit_dial_list(session, unit.unit_code, settings, field)
        return numbers, labels, unit.unit_code
    number = _dialable(unit.number, f"{field}.number", settings)
    return [Destination(number.dial, number.post_dial)], {}, None


@router.post(
    "",
    status_code=202,
    response_model=BridgeOut,
    summary="Bridge caller, dispatcher and a unit's on-duty phone into one call",
)
async def create_bridge(
    body: BridgeIn,
    request: Request,
    session: SessionDep,
    service: ServiceDep,
    token: TokenDep,
    idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
) -> JSONResponse:
    # The hot path of a dispatcher's day: on the loop, with its SQL (the token check too) in
    # one hop to a worker thread and one transaction (the call, its legs, the audit entry);
    # dialling starts here, on the loop, right after that commit (module docstring).
    if isinstance(body.caller, CallRef):
        add = partial(_add_unit_to_inbound, body, body.caller, request, session, service, token)
        return await to_thread.run_sync(add)
    store = partial(
        _store_bridge, body, body.caller, request, session, service, token, idempotency_key
    )
    stored = await to_thread.run_sync(store)
    if stored.start is not None:
        await stored.manager.start_bridge(stored.view.id, stored.start)
    return JSONResponse(
        stored.view.model_dump(mode="json"),
        status_code=202 if stored.start is not None else 200,
        headers={"Location": f"/api/v1/bridges/{stored.view.id}"},
    )


@dataclass(frozen=True, slots=True)
class _Stored:
    view: BridgeOut
    manager: CallManager
    start: BridgeRequest | None  # None: an earlier request with the same Idempotency-Key made it


def _store_bridge(
    body: BridgeIn,
    caller_ref: NumberRef,
    request: Request,
    session: Session,
    service: Service,
    token: str,
    idempotency_key: str | None,
) -> _Stored:
    """Worker thread: check the token, the numbers and the dial quota, then store the bridge
    and its audit entry in one transaction."""
    principal = authenticate(session, request, token, DISPATCH_ROLES)
    settings = service.settings
    unit_numbers, labels, unit_code = _unit_numbers(body.unit, session, settings)
    caller = _dialable(caller_ref.number, "caller.number", settings).dial
    dispatcher = _dialable(body.dispatcher.number, "dispatcher.number", settings).dial
    manager = _manager(service)
    take_dial_quota(request, principal)
    bridge_req = BridgeRequest(
        dial_lists={
            Role.CALLER: [caller],
            Role.DISPATCHER: [dispatcher],
            Role.UNIT: unit_numbers,
        },
        created_by=principal.name,
        labels=labels,
        idempotency_key=idempotency_key,
        incident_id=body.incident_id,
        unit_code=unit_code,
        request=body.model_dump(mode="json"),
    )
    try:
        call, created = manager.store_bridge(bridge_req, session)
    except IntegrityError:
        session.rollback()
        if not idempotency_key:
            raise
        # a concurrent request with the same key stored it first: that one is the bridge
        call, created = manager.store_bridge(bridge_req, session)
        if created:
            raise
    if not created:
        session.commit()
        return _Stored(bridge_out(_get_call(session, call.id)), manager, None)
    audit_ctx.record(
        session,
        request,
        principal,
        "bridge.create",
        "call",
        call.id,
        {"unit_code": unit_code, "incident_id": body.incident_id},
    )
    session.commit()
    return _Stored(bridge_out(call), manager, bridge_req)


def _add_unit_to_inbound(
    body: BridgeIn,
    ref: CallRef,
    request: Request,
    session: Session,
    service: Service,
    token: str,
) -> JSONResponse:
    """Worker thread: turn a connected inbound call (caller + the seat that took it) into a
    three-way call."""
    principal = authenticate(session, request, token, DISPATCH_ROLES)
    numbers, labels, unit_code = _unit_numbers(body.unit, session, service.settings)
    manager = _manager(service)
    take_dial_quota(request, principal)
    session.commit()  # end the read before the call manager writes (SQLite: one writer)
    call_id = ref.call_id
    try:
        from_thread.run(manager.add_unit, call_id, numbers, labels, unit_code)
    except CallNotActive as exc:
        raise Problem(
            422,
            "Unknown call",
            f"call {call_id!r} is not a connected inbound call of this service",
            kind="validation",
            errors=[
                {
                    "field": "caller.call_id",
                    "message": "no such connected inbound call",
                    "type": "unknown",
                }
            ],
        ) from exc
    except EventError as exc:
        raise Problem(exc.status_hint, "Not possible now", str(exc), kind="conflict") from exc
    from_thread.run(manager.flushed)
    audit_ctx.record(
        session, request, principal, "bridge.add_unit", "call", call_id, {"unit_code": unit_code}
    )
    call = _get_call(session, call_id)
    return JSONResponse(
        bridge_out(call).model_dump(mode="json"),
        status_code=202,
        headers={"Location": f"/api/v1/bridges/{call_id}"},
    )


def _get_call(session: Session, call_id: str) -> Call:
    session.expire_all()
    # one query for the call, its legs, attempts and recording (the view needs them all; lazy
    # loads were four round trips per request, which on PostgreSQL under load add up)
    call = session.get(
        Call,
        call_id,
        options=[joinedload(Call.legs), joinedload(Call.attempts), joinedload(Call.recordings)],
    )
    if call is None or call.kind is not CallKind.BRIDGE:
        raise NotFound("bridge", call_id)
    return call


@router.get("/{bridge_id}", response_model=BridgeOut, summary="A bridge with its legs")
def get_bridge(bridge_id: str, session: SessionDep, _principal: DispatcherDep) -> BridgeOut:
    return bridge_out(_get_call(session, bridge_id))


LegAction = Literal["hangup", "redial", "mute", "unmute", "hold", "unhold"]
_ACTIONS: dict[
    str, type[HangupParty | RedialParty | MuteParty | UnmuteParty | HoldParty | UnholdParty]
] = {
    "hangup": HangupParty,
    "redial": RedialParty,
    "mute": MuteParty,
    "unmute": UnmuteParty,
    "hold": HoldParty,
    "unhold": UnholdParty,
}


def _forward_to_owner(
    bridge_id: str,
    request: Request,
    session: Session,
    service: ServiceDep,
    body: dict[str, Any] | None = None,
) -> Response | None:
    """A live bridge another node carries: pass the request to that node (its API URL from the
    nodes table) with the caller's own token, and answer with its answer. None: answer here.

    The caller's token is the node credential: every node reads the same token table, the
    owner authenticates and audits the real person, and there is no second secret to manage.
    A forwarded request is never forwarded again."""
    call = _get_call(session, bridge_id)
    here = service.settings.node
    if call.node == here or call.state not in (CallState.DIALING, CallState.CONNECTED):
        return None
    if request.headers.get(FORWARDED_HEADER):
        return None
    owner = next((n for n in node_repo.list_nodes(session) if n.name == call.node), None)
    if owner is None or owner.state != "up" or not owner.url:
        raise Problem(
            503, "Node unavailable",
            f"bridge {bridge_id} runs on node {call.node}, which cannot be reached",
            kind="node-unavailable",
        )  # fmt: skip
    session.commit()
    headers = {FORWARDED_HEADER: here, "Content-Type": "application/json"}
    if auth := request.headers.get("Authorization"):
        headers["Authorization"] = auth
    url = owner.url.rstrip("/") + request.url.path
    try:
        content = json.dumps(body).encode() if body is not None else None
        resp = httpx.post(url, headers=headers, content=content, timeout=FORWARD_TIMEOUT_S)
    except httpx.HTTPError as exc:
        raise Problem(
            503, "Node unavailable", f"node {call.node} did not answer: {type(exc).__name__}",
            kind="node-unavailable",
        ) from exc  # fmt: skip
    log.info("bridge %s: %s forwarded to node %s: %d", bridge_id, request.url.path,
             call.node, resp.status_code)  # fmt: skip
    media = resp.headers.get("content-type", "application/json")
    return Response(resp.content, status_code=resp.status_code, media_type=media)


def _control(
    bridge_id: str,
    event: Event,
    session: Session,
    service: ServiceDep,
    labels: dict[str, str] | None = None,
) -> None:
    """Pass a request to the running bridge (on the event loop) from this worker thread."""
    _get_call(session, bridge_id)
    session.commit()  # end the read before the call manager writes (SQLite: one writer)
    manager = _manager(service)
    try:
        from_thread.run(manager.request, bridge_id, event, labels)
    except CallNotActive as exc:
        raise Problem(
            409, "Bridge is over", f"bridge {bridge_id} is no longer active", kind="conflict"
        ) from exc
    except EventError as exc:
        raise Problem(exc.status_hint, "Not possible now", str(exc), kind="conflict") from exc
    from_thread.run(manager.flushed)


def _labelled(labels: dict[str, str], unit_code: str | None) -> dict[str, str]:
    """Attempt labels of an added unit name the unit: `L07 staff: 张三`."""
    if unit_code is None:
        return labels
    return {number: f"{unit_code} {label}" for number, label in labels.items()}


@router.post(
    "/{bridge_id}/units",
    status_code=202,
    response_model=BridgeOut,
    summary="Add one more unit (role unit2, unit3; at most five parties), confirmed like the first",
)
def add_unit(
    bridge_id: str,
    body: UnitRef | NumberRef,
    request: Request,
    session: SessionDep,
    service: ServiceDep,
    principal: DispatcherDep,
) -> Response:
    sent = body.model_dump()
    if (forwarded := _forward_to_owner(bridge_id, request, session, service, sent)) is not None:
        return forwarded
    numbers, labels, unit_code = _unit_numbers(body, session, service.settings, "unit")
    take_dial_quota(request, principal)
    _control(bridge_id, AddParty(tuple(numbers)), session, service, _labelled(labels, unit_code))
    out = bridge_out(_get_call(session, bridge_id))
    added = max((leg for leg in out.legs if leg.role.startswith("unit")), key=_leg_order)
    audit_ctx.record(
        session, request, principal, "bridge.unit.add", "call", bridge_id,
        {"unit_code": unit_code, "role": added.role},
    )  # fmt: skip
    return JSONResponse(out.model_dump(mode="json"), status_code=202)


def _leg_order(leg: LegOut) -> str:
    return "unit1" if leg.role == "unit" else leg.role


UnitRole = Literal["unit", "unit2", "unit3"]


@router.post(
    "/{bridge_id}/legs/{role}/replace",
    status_code=202,
    response_model=BridgeOut,
    summary="Hang up a unit and dial another one in its place (the recording keeps both)",
)
def replace_unit(
    bridge_id: str,
    role: Annotated[UnitRole, Path()],
    body: UnitRef | NumberRef,
    request: Request,
    session: SessionDep,
    service: ServiceDep,
    principal: DispatcherDep,
) -> Response:
    sent = body.model_dump()
    if (forwarded := _forward_to_owner(bridge_id, request, session, service, sent)) is not None:
        return forwarded
    numbers, labels, unit_code = _unit_numbers(body, session, service.settings, "unit")
    take_dial_quota(request, principal)
    event = ReplaceUnit(tuple(numbers), Role(role))
    _control(bridge_id, event, session, service, _labelled(labels, unit_code))
    audit_ctx.record(
        session, request, principal, "bridge.unit.replace", "call", bridge_id,
        {"unit_code": unit_code, "role": role},
    )  # fmt: skip
    out = bridge_out(_get_call(session, bridge_id))
    return JSONResponse(out.model_dump(mode="json"), status_code=202)


@router.post(
    "/{bridge_id}/legs/{role}/{action}",
    response_model=BridgeOut,
    summary="Hang up, redial, mute, unmute, hold or unhold one party",
)
def control_leg(
    bridge_id: str,
    role: Annotated[Role, Path()],
    action: Annotated[LegAction, Path()],
    request: Request,
    session: SessionDep,
    service: ServiceDep,
    principal: DispatcherDep,
) -> BridgeOut | Response:
    if (forwarded := _forward_to_owner(bridge_id, request, session, service)) is not None:
        return forwarded
    if action == "redial":
        take_dial_quota(request, principal)
    _control(bridge_id, _ACTIONS[action](role), session, service)
    audit_ctx.record(
        session, request, principal, f"bridge.leg.{action}", "call", bridge_id, {"role": role.value}
    )
    return bridge_out(_get_call(session, bridge_id))


@router.post("/{bridge_id}/end", response_model=BridgeOut, summary="End the bridge for everyone")
def end_bridge(
    bridge_id: str,
    request: Request,
    session: SessionDep,
    service: ServiceDep,
    principal: DispatcherDep,
) -> BridgeOut | Response:
    if (forwarded := _forward_to_owner(bridge_id, request, session, service)) is not None:
        return forwarded
    _control(bridge_id, EndBridge(), session, service)
    audit_ctx.record(session, request, principal, "bridge.end", "call", bridge_id, {})
    return bridge_out(_get_call(session, bridge_id))
