"""What a starting node does with what its previous process left (decisions D14, D15, D18).

Before the node serves: the recordings a crash left are sealed; with LINKCALL_RECOVER_CALLS on,
the connected bridges (left by a crash or handed over at a planned stop) are claimed to be
carried on; every other call still open is marked `interrupted`. Then, at once and without
delaying start-up: each claimed call is carried on by re-INVITE (calls/resume.py), and every
party left in a call that is not carried on is sent BYE (or CANCEL, when it was still ringing).
"""

from __future__ import annotations

import asyncio
import logging
from functools import partial
from typing import TYPE_CHECKING

from calls import lost_recordings
from calls.interrupted_calls import OrphanLeg
from calls.resume import Claimed, ResumableCall, claim_resumable, end_unresumed, resume_call
from recordings import recover
from recordings.errors import RecoveryError
from storage.base import utcnow

if TYPE_CHECKING:
    from calls.manager import CallManager

log = logging.getLogger(__name__)


async def take_over_left_calls(manager: CallManager) -> tuple[list[str], asyncio.Task[None] | None]:
    """Seal, claim and mark what the last process left; the calls marked interrupted, and the
    task that carries calls on and ends the orphaned legs (None when there is nothing to do)."""
    try:
        claim = partial(
            lost_recordings.claim, manager.records.factory, node=manager.node, now=utcnow()
        )
        infos = await asyncio.to_thread(recover, manager.recordings_root, claim=claim)
    except RecoveryError as exc:
        log.error("some recordings could not be recovered: %s", exc)
        infos = list(exc.recovered)
    now = utcnow()
    claimed = Claimed([], [])
    if manager.settings.recover_calls:
        claimed = await manager.records.run(
            claim_resumable, manager.records.factory, manager.node, infos,
            manager.recordings_root, now,
        )  # fmt: skip
    keep = [rc.call_id for rc in claimed.calls]
    interrupted = await manager.records.mark_interrupted_except(manager.node, infos, now, keep)
    if interrupted.call_ids:
        log.warning(
            "%d call(s) were interrupted by a restart and are marked so",
            len(interrupted.call_ids),
        )
    orphans = interrupted.orphans + claimed.cancels
    task = None
    if orphans or claimed.calls:
        task = asyncio.create_task(
            carry_on_and_end(manager, orphans, claimed.calls), name="orphaned-dialogs"
        )
    return interrupted.call_ids, task


async def carry_on_and_end(
    manager: CallManager, orphans: list[OrphanLeg], calls: list[ResumableCall]
) -> None:
    """At once: hang up (or cancel) what is not carried on, and carry on the calls that can be
    (each bounded by its re-INVITEs' deadline)."""
    timeout = manager.settings.recover_timeout_s

    async def resume(rc: ResumableCall) -> None:
        try:
            await resume_call(manager, rc, timeout)
        except Exception:  # never leave the call open in the records
            log.exception("call %s: could not be carried on after the restart", rc.call_id)
            end_unresumed(manager.records, manager.publish, rc.call_id)

    await asyncio.gather(end_orphans(manager, orphans), *(resume(rc) for rc in calls))


async def end_orphans(manager: CallManager, orphans: list[OrphanLeg]) -> None:
    """BYE every party a crashed process left in a call (at once, concurrently; each BYE is
    bounded by its transaction's Timer F) and record what came back on the leg."""

    async def one(orphan: OrphanLeg) -> None:
        try:
            result = await manager.ua.end_orphan(orphan.dialog)
        except Exception as exc:  # one failed BYE must not stop the others
            log.exception("call %s: BYE to the %s failed", orphan.call_id, orphan.role)
            result = f"bye failed: {type(exc).__name__}"
        log.warning("call %s: %s left in the call by a crash: %s",
                    orphan.call_id, orphan.role, result)  # fmt: skip
        manager.records.queue_recovery(orphan.call_id, orphan.role, result)
        manager.publish(
            "leg.recovered",
            {"call_id": orphan.call_id, "role": orphan.role, "result": result},
        )

    await asyncio.gather(*(one(o) for o in orphans))
