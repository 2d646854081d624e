"""Calls a process left open when it crashed (or a node that stopped heart-beating left): end
them `interrupted` (or `node_lost`), store the recordings recovered from disk, and list the
legs whose SIP dialogs may still be up, to be sent BYE (or CANCEL)."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from calls.recording_rows import apply_info, sealed_after_crash
from recordings import RecordingInfo
from storage.engine import session_scope
from storage.models.call_records import Call, CallState, Leg, Recording, RecordingState
from telephony.sip.orphans import PENDING_INVITE


@dataclass(frozen=True, slots=True)
class OrphanLeg:
    """A party a crashed process left in a call: its leg row and its SIP dialog."""

    call_id: str
    role: str
    dialog: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Interrupted:
    """What `mark_interrupted` found: the calls it ended and the legs whose dialogs are open."""

    call_ids: list[str]
    orphans: list[OrphanLeg]


def end_leg_row(leg: Leg, at: datetime, reason: str) -> None:
    """End a leg row the process did not see end: when and why; a party that was in the call
    (or being dialled or checked) has `left`."""
    leg.ended_at, leg.end_reason = at, reason
    if leg.state in ("connected", "confirming", "dialing", "waiting"):
        leg.state = "left"


def mark_interrupted(
    factory: sessionmaker[Session],
    node: str,
    recovered: list[RecordingInfo],
    root: Path,
    now: datetime,
    *,
    reason: str = "interrupted",
    keep: Collection[str] = (),
) -> Interrupted:
    """After a crash: calls this node left open are ended "interrupted"; recovered recordings are
    stored. Returns the calls marked and the legs still in a SIP dialog (to be sent BYE).

    With `reason="node_lost"` a survivor ends the calls of another node that stopped
    heart-beating: their recordings, whose files sit on that node's disk, are marked interrupted
    (they are sealed when that node starts again with its data)."""
    marked: list[str] = []
    orphans: list[OrphanLeg] = []
    with session_scope(factory) as s:
        by_id = {info.recording_id: info for info in recovered}
        for rec in s.scalars(select(Recording).where(Recording.id.in_(list(by_id)))):
            apply_info(rec, by_id[rec.id], root)
            rec.finalised_at = now
        open_calls = s.scalars(
            select(Call).where(
                Call.node == node, Call.state.in_([CallState.DIALING, CallState.CONNECTED])
            )
        )
        for call in open_calls:
            if call.id in keep:  # carried on after the crash (calls/resume.py)
                continue
            segment = call.last_recording
            info = by_id.get(segment.id) if segment is not None else None
            if info is None and segment is not None and reason != "node_lost":
                info = sealed_after_crash(segment, root, now)
            call.ended_at = info.ended_at if info is not None else now
            call.state = CallState.ENDED if call.connected_at else CallState.FAILED
            call.end_reason, call.interrupted = reason, True
            for leg in call.legs:
                if leg.ended_at is None:
                    if leg.dialog:  # answered (or ringing) and not seen ending: the peer may
                        # still be in it (or its phone ringing): BYE (or CANCEL) it
                        orphans.append(OrphanLeg(call.id, leg.role, dict(leg.dialog)))
                        ringing = PENDING_INVITE in leg.dialog
                        leg.recovery = "cancel pending" if ringing else "bye pending"
                    end_leg_row(leg, call.ended_at, reason)
            recording = segment
            if recording is not None and recording.state is RecordingState.RECORDING:
                if reason == "node_lost":
                    recording.state = RecordingState.INTERRUPTED
                    recording.error = f"node {node} lost: the partial files stay on its disk"
                else:
                    recording.state = RecordingState.FAILED
                    recording.error = "no audio found after the crash"
            marked.append(call.id)
    return Interrupted(marked, orphans)
