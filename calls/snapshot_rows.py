"""A flow's snapshot mirrored into its call, leg and attempt rows: bridges, inbound calls and
IVR (key-prompt) calls. Each writes what changed since the writer last wrote the call, as Core
statements through `calls.record_rows.CallRows`, in `CallRecords`' writer thread."""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import Connection

from callflows.bridge import BridgeSnapshot
from callflows.inbound import InboundSnapshot
from callflows.ivr import KeyPromptResult, KeyPromptState
from calls.record_rows import CallRows
from storage.models.call_records import CallState

log = logging.getLogger(__name__)


def save_bridge_snapshot(
    conn: Connection, rows: CallRows, call_id: str, snap: BridgeSnapshot, labels: dict[str, str]
) -> None:
    """Mirror the flow's snapshot into the call, leg and attempt rows (what changed only)."""
    known = rows.of(conn, call_id)
    if known is None:
        log.error("snapshot for unknown call %s", call_id)
        return
    call = {"state": CallState(snap.state.value), "connected_at": snap.connected_at,
            "ended_at": snap.ended_at, "end_reason": snap.end_reason}  # fmt: skip
    rows.put_call(conn, call_id, known, call)
    for party in snap.parties:
        if party.state.value == "absent":  # never dialled (or not carried on after a crash)
            continue
        role = party.role.value
        old = known.legs.get(role)
        leg = {"number": party.number or (old["number"] if old is not None else None),
               "state": party.state.value, "muted": party.muted, "held": party.held,
               "connected_at": party.connected_at, "ended_at": party.ended_at,
               "end_reason": party.end_reason}  # fmt: skip
        rows.put_leg(conn, call_id, known, role, leg)
        for att in party.attempts:
            new = {"role": role, "number": att.number, "label": labels.get(att.number),
                   "started_at": att.started_at}  # fmt: skip
            outcome = {"result": att.result, "sip_status": att.sip_status,
                       "ended_at": att.ended_at, "extension": att.extension,
                       "extension_sent_at": att.extension_sent_at,
                       "confirmed_at": att.confirmed_at}  # fmt: skip
            rows.put_attempt(conn, call_id, known, att.leg_id, outcome, new)
    if snap.state.value in ("ended", "failed"):
        rows.forget((call_id,))  # its last snapshot: nothing more to compare with


def save_key_prompt(
    conn: Connection, rows: CallRows, call_id: str, result: KeyPromptResult
) -> None:
    """Mirror an IVR call (survey, duty check) into its call, leg and attempt rows."""
    known = rows.of(conn, call_id)
    if known is None:
        log.error("IVR result for unknown call %s", call_id)
        return
    done = result.state is KeyPromptState.DONE
    call = dict(known.call)
    if result.answered_at is not None:
        call["connected_at"] = result.answered_at
    if done:
        call["state"] = CallState.ENDED if result.answered_at else CallState.FAILED
        call["ended_at"] = result.ended_at
        call["end_reason"] = result.outcome.value if result.outcome else None
    elif result.answered_at is not None:
        call["state"] = CallState.CONNECTED
    rows.put_call(conn, call_id, known, call)
    role = next(iter(known.legs), None)  # its only leg (the first, by id)
    if role is not None:
        state = "left" if done else ("connected" if result.answered_at else "dialing")
        leg = {"state": state, "connected_at": result.answered_at, "ended_at": result.ended_at,
               "end_reason": call["end_reason"]}  # fmt: skip
        rows.put_leg(conn, call_id, known, role, leg)
    att = result.attempt
    if att is not None:
        new = {"role": role or "callee", "number": att.number, "started_at": att.started_at}
        values = {"result": att.result, "sip_status": att.sip_status, "ended_at": att.ended_at}
        rows.put_attempt(conn, call_id, known, att.leg_id, values, new)
    if done:
        rows.forget((call_id,))


def save_inbound_snapshot(
    conn: Connection, rows: CallRows, call_id: str, snap: InboundSnapshot
) -> None:
    """Mirror an inbound call (caller ringing the seats) into its rows."""
    known = rows.of(conn, call_id)
    if known is None:
        log.error("inbound snapshot for unknown call %s", call_id)
        return
    state = {
        "ringing": CallState.DIALING,
        "connected": CallState.CONNECTED,
        "handed_over": CallState.CONNECTED,
    }.get(snap.state.value, CallState.ENDED if snap.connected_at else CallState.FAILED)
    call = {"state": state, "connected_at": snap.connected_at, "ended_at": snap.ended_at,
            "end_reason": snap.end_reason}  # fmt: skip
    rows.put_call(conn, call_id, known, call)
    caller, seat = known.legs.get("caller"), known.legs.get("dispatcher")
    caller_state = None
    if caller is not None:
        caller_state = {CallState.CONNECTED: "connected", CallState.DIALING: "ringing"}.get(
            state, "left"
        )
        values: dict[str, Any] = {"connected_at": snap.connected_at, "state": caller_state}
        if snap.ended_at is not None:
            values |= {"ended_at": snap.ended_at, "end_reason": snap.end_reason}
        rows.put_leg(conn, call_id, known, "caller", values)
    if seat is not None:
        seat_state = caller_state if caller_state is not None else seat["state"]
        values = {"number": snap.seat_number or seat["number"], "state": seat_state,
                  "connected_at": snap.connected_at}  # fmt: skip
        rows.put_leg(conn, call_id, known, "dispatcher", values)
    for att in snap.seat_attempts:
        new = {"role": "dispatcher", "number": att.number, "started_at": att.started_at}
        values = {"result": att.result, "sip_status": att.sip_status, "ended_at": att.ended_at}
        rows.put_attempt(conn, call_id, known, att.leg_id, values, new)
    if state in (CallState.ENDED, CallState.FAILED):
        rows.forget((call_id,))
