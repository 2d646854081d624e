"""What a stopping service does with the calls it carries (decision D18).

A planned stop (SIGTERM: an upgrade, `systemctl restart`, `docker stop`) with
LINKCALL_RECOVER_CALLS on hands every connected bridge of two or more parties to the next
process of this node: no BYE, the recording segment sealed, the call row left `connected`
with its legs' dialogs, so the next start carries the call on by re-INVITE exactly as after a
crash (calls/resume.py). A party of such a call still ringing is CANCELled by the stop and, once
its INVITE has ended, stored ended `shutdown` (a CANCEL not answered in time is left stored for
the next start to send again). Every other call the stop cuts (a bridge still dialling, a callback
survey, a reminder, a ringing inbound call, or every call with recovery off) gets BYE/CANCEL
and its row is ended at once with the reason `shutdown`, instead of staying open until the next
start marks it `interrupted`. A call cancelled for another reason (its caller's deadline) ends
`cancelled`; a call whose runner failed (an error nothing in the runner expected; its legs are
hung up by the runner's cleanup) ends `runner_failed`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime

from sqlalchemy.orm import Session

from calls.hooks import BridgeHooks
from calls.interrupted_calls import end_leg_row
from calls.records import CallRecords
from calls.runner import FlowRunner
from storage.base import utcnow
from storage.models.call_records import Call, CallState

log = logging.getLogger(__name__)

SHUTDOWN = "shutdown"
CANCELLED = "cancelled"
RUNNER_FAILED = "runner_failed"


def carried_over(runners: Mapping[str, FlowRunner]) -> list[str]:
    """The calls a planned stop hands to the next process: bridges still running with two or
    more parties connected (fewer could not go on after a restart anyway)."""
    return [
        call_id
        for call_id, runner in runners.items()
        if isinstance(runner.hooks, BridgeHooks)
        and not runner.finished
        and not runner.flow.finished
        and len(runner.connected_roles()) >= 2
    ]


def hand_over(runners: Mapping[str, FlowRunner], records: CallRecords, node: str) -> set[str]:
    """At a planned stop, before the runners are cancelled: leave the parties of the calls
    `carried_over` up, and note when their silence began. The calls handed over."""
    now = utcnow()
    handed = set(carried_over(runners))
    for call_id in handed:
        runners[call_id].hand_over()
        records.queue_write(note_handed_over, call_id, now, what="handed over")
    if handed:
        log.warning("stopping: %d call(s) left to the next start of node %s", len(handed), node)
    return handed


def note_handed_over(session: Session, call_id: str, at: datetime) -> None:
    """The parties' silence starts now (the next start re-INVITEs them and keeps this)."""
    call = session.get(Call, call_id)
    if call is not None and call.state is CallState.CONNECTED:
        call.gap_started_at = at


def end_legs_cut(session: Session, call_id: str, at: datetime, roles: tuple[str, ...]) -> None:
    """A call handed over: the legs that were still ringing were CANCELled by the stop (their
    INVITE ended), so they are stored ended `shutdown` now, with nothing left to CANCEL."""
    call = session.get(Call, call_id)
    if call is None:
        return
    for leg in call.legs:
        if leg.role in roles and leg.ended_at is None:
            end_leg_row(leg, at, SHUTDOWN)
            leg.dialog = {}


def end_cut_call(session: Session, call_id: str, at: datetime, reason: str) -> None:
    """End a call the process stopped running (`shutdown`, `cancelled`, `runner_failed`), with
    every leg still open; a call already ended is left as it is."""
    call = session.get(Call, call_id)
    if call is None or call.state not in (CallState.DIALING, CallState.CONNECTED):
        return
    call.ended_at = at
    call.state = CallState.ENDED if call.connected_at else CallState.FAILED
    call.end_reason = reason
    call.interrupted = reason == SHUTDOWN
    for leg in call.legs:
        if leg.ended_at is None:
            end_leg_row(leg, at, reason)
