"""Call recovery after a crash (issue 18, decision D15): the restarted process carries its
interrupted three-way calls on instead of hanging them up (`LINKCALL_RECOVER_CALLS`).

At start-up, before the crashed calls are ended (`calls.interrupted_calls.mark_interrupted`),
`claim_resumable` picks this node's bridges that were connected with at least two parties in a
stored SIP dialog. Their first recording segment is sealed (crash recovery of the files already
did it) and the call keeps `gap_started_at`, the end of that audio. Then, for each such call,
`resume_call`:

1. opens a fresh RTP endpoint per party and re-INVITEs its dialog onto it, all parties at
   once, each bounded by `timeout` (telephony/sip/resume.py);
2. a party that refuses or does not answer is hung up (BYE) and its leg records why;
3. with two or more parties back, a `BridgeFlow` is built on them (`ExistingLeg`s, keeping the
   call's creation and first connection times) and run like any bridge: they are joined in a
   new conference, the recording goes on as the call's next segment (its own tracks and seal),
   leg controls and the end work as before. The call records `resumed_at`;
4. with fewer than two, the call ends `interrupted` as it would without recovery.

Parties still ringing at the crash are not carried on: their INVITE is CANCELled (orphans.py).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from callflows.bridge import BridgeFlow
from callflows.bridge_party import ExistingLeg
from callflows.events import Role
from calls.hooks import BridgeHooks, Publish
from calls.interrupted_calls import OrphanLeg
from calls.recording_rows import apply_info, sealed_after_crash
from calls.records import CallRecords
from recordings import RecordingInfo
from recordings.errors import RecordingError
from storage.base import utcnow
from storage.engine import session_scope
from storage.models.call_records import Call, CallKind, CallState, RecordingState
from telephony.sip.orphans import PENDING_INVITE

if TYPE_CHECKING:
    from calls.manager import CallManager
    from calls.media_workers.surface import MediaEndpoint
    from telephony.sip.leg import Leg as SipLeg

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ResumableLeg:
    role: str
    number: str
    direction: Literal["outbound", "inbound"]
    dialog: dict[str, Any]
    connected_at: datetime | None


@dataclass(frozen=True, slots=True)
class ResumableCall:
    call_id: str
    created_at: datetime
    connected_at: datetime
    gap_started_at: datetime
    next_segment: int
    legs: tuple[ResumableLeg, ...]


@dataclass(frozen=True, slots=True)
class Claimed:
    calls: list[ResumableCall]
    cancels: list[OrphanLeg]  # parties of those calls still ringing at the crash


def claim_resumable(
    factory: sessionmaker[Session],
    node: str,
    recovered: list[RecordingInfo],
    root: Path,
    now: datetime,
) -> Claimed:
    """This node's connected bridges with two or more parties in a stored dialog: their last
    recording segment sealed, the gap's start kept, their legs marked `reinvite pending`."""
    found: list[ResumableCall] = []
    cancels: list[OrphanLeg] = []
    by_id = {info.recording_id: info for info in recovered}
    with session_scope(factory) as s:
        calls = s.scalars(
            select(Call).where(
                Call.node == node,
                Call.kind == CallKind.BRIDGE,
                Call.state == CallState.CONNECTED,
            )
        )
        for call in calls:
            live = [
                leg
                for leg in call.legs
                if leg.ended_at is None and leg.dialog and PENDING_INVITE not in leg.dialog
            ]
            if len(live) < 2 or call.connected_at is None:
                continue
            segment = call.last_recording
            info = by_id.get(segment.id) if segment is not None else None
            if segment is not None and info is not None:
                apply_info(segment, info, root)
                segment.finalised_at = now
            elif segment is not None:  # sealed by a media worker at the crash?
                info = sealed_after_crash(segment, root, now)
            if segment is not None and info is None and segment.state is RecordingState.RECORDING:
                segment.state = RecordingState.FAILED
                segment.error = "no audio found after the crash"
            call.interrupted = True
            if info is not None:
                call.gap_started_at = info.ended_at
            elif not (segment is not None and segment.state is RecordingState.FINALISED
                      and call.gap_started_at is not None):  # fmt: skip
                call.gap_started_at = now  # else: handed over at a planned stop (its time)
            for leg in call.legs:
                if leg in live:
                    leg.recovery = "reinvite pending"
                elif leg.ended_at is None:  # ringing or waiting: not carried on
                    if leg.dialog and PENDING_INVITE in leg.dialog:
                        cancels.append(OrphanLeg(call.id, leg.role, dict(leg.dialog)))
                        leg.recovery = "cancel pending"
                    leg.ended_at, leg.end_reason, leg.state = now, "interrupted", "left"
            found.append(
                ResumableCall(
                    call_id=call.id,
                    created_at=call.created_at,
                    connected_at=call.connected_at,
                    gap_started_at=call.gap_started_at,
                    next_segment=len(call.recordings) + 1,
                    legs=tuple(
                        ResumableLeg(
                            role=leg.role,
                            number=leg.number or "",
                            direction="inbound" if leg.direction == "inbound" else "outbound",
                            dialog=dict(leg.dialog or {}),
                            connected_at=leg.connected_at,
                        )
                        for leg in live
                    ),
                )
            )
    return Claimed(found, cancels)


def _resumed(s: Session, call_id: str, at: datetime) -> None:
    call = s.get(Call, call_id)
    if call is not None:
        call.resumed_at = at


def _not_resumed(s: Session, call_id: str, at: datetime) -> None:
    """Fewer than two parties came back: the call ends as an interrupted call does."""
    call = s.get(Call, call_id)
    if call is None:
        return
    call.state, call.end_reason = CallState.ENDED, "interrupted"
    call.ended_at = call.gap_started_at or at
    for leg in call.legs:
        if leg.ended_at is None:
            leg.ended_at, leg.end_reason, leg.state = call.ended_at, "interrupted", "left"


def end_unresumed(records: CallRecords, publish: Publish, call_id: str) -> None:
    """The call could not be carried on: it ends `interrupted`, in the records and the stream."""
    records.queue_write(_not_resumed, call_id, utcnow(), what="not resumed")
    publish("call.state", {"call_id": call_id, "kind": "bridge", "state": "ended",
                           "end_reason": "interrupted"})  # fmt: skip


async def resume_call(manager: CallManager, rc: ResumableCall, timeout: float) -> bool:
    """Carry one interrupted call on (see the module's docstring); True when it goes on."""
    back: dict[str, tuple[SipLeg, MediaEndpoint, ResumableLeg]] = {}

    async def one(leg: ResumableLeg) -> None:
        try:
            endpoint = await manager.media.open_endpoint(f"{rc.call_id}:{leg.role}:r")
        except Exception as exc:  # no port, no media worker: the party cannot be carried on
            log.exception("call %s: no media for the %s; hanging it up", rc.call_id, leg.role)
            ended = await manager.ua.end_orphan(leg.dialog)  # never left in a dead call (D14)
            result = f"no media ({type(exc).__name__}): {ended}"
            manager.records.queue_recovery(rc.call_id, leg.role, result)
            manager.publish("leg.recovered", {"call_id": rc.call_id, "role": leg.role,
                                              "result": result})  # fmt: skip
            return
        try:
            resumed = await manager.ua.resume_orphan(
                leg.dialog,
                (manager.media.host, endpoint.local_port),
                number=leg.number,
                direction=leg.direction,
                timeout=timeout,
            )
        except Exception as exc:  # one party's failure must not stop the others
            log.exception("call %s: re-INVITE of the %s failed", rc.call_id, leg.role)
            await endpoint.close()
            result = f"reinvite failed: {type(exc).__name__}"
            manager.records.queue_recovery(rc.call_id, leg.role, result)
            return
        if resumed.leg is None or resumed.leg.media is None:
            await endpoint.close()
            result = await manager.ua.give_up(resumed)
            log.warning("call %s: the %s was not carried on: %s", rc.call_id, leg.role, result)
            manager.records.queue_recovery(rc.call_id, leg.role, result)
            note = {"call_id": rc.call_id, "role": leg.role, "result": result}
            manager.publish("leg.recovered", note)
            return
        endpoint.configure(resumed.leg.media)
        back[leg.role] = (resumed.leg, endpoint, leg)
        manager.records.queue_recovery(rc.call_id, leg.role, resumed.result)

    await asyncio.gather(*(one(leg) for leg in rc.legs))
    now = utcnow()
    if len(back) < 2:
        for sip, endpoint, leg in back.values():  # alone in the call: hang it up
            await sip.hangup()
            await endpoint.close()
            manager.records.queue_recovery(rc.call_id, leg.role, "reinvite 200, then alone: bye")
        end_unresumed(manager.records, manager.publish, rc.call_id)
        log.warning("call %s: fewer than two parties came back; ended", rc.call_id)
        return False
    parties = {
        Role(role): ExistingLeg(f"{role}-r{rc.next_segment}", leg.number, leg.connected_at)
        for role, (_, _, leg) in back.items()
    }
    flow = BridgeFlow(
        rc.call_id,
        parties,
        now,
        manager.settings.bridge,
        resumed_from=(rc.created_at, rc.connected_at),
    )
    hooks = BridgeHooks(manager.records, manager.publish, rc.call_id, {}, stats=manager.stats)
    runner = manager.make_runner(
        rc.call_id, flow, hooks, recording_id=f"{rc.call_id}-{rc.next_segment}"
    )
    for role, (sip, endpoint, _) in back.items():
        runner.adopt_answered(f"{role}-r{rc.next_segment}", role, sip, endpoint)
    manager.records.queue_write(_resumed, rc.call_id, now, what="resumed")
    gap = (now - rc.gap_started_at).total_seconds()
    manager.publish(
        "call.resumed",
        {"call_id": rc.call_id, "roles": sorted(back), "gap_s": round(gap, 1),
         "segment": rc.next_segment},
    )  # fmt: skip
    log.warning("call %s: carried on after the crash with %s (%.1f s of silence)",
                rc.call_id, ", ".join(sorted(back)), gap)  # fmt: skip
    try:
        manager.launch(rc.call_id, runner)
    except RecordingError:  # pragma: no cover - the runner reports its own recording errors
        log.exception("call %s: could not be carried on", rc.call_id)
        return False
    return True
