"""Carrying a call on after a crash (issue 18): a re-INVITE in a dialog a previous process left.

The restarted process (or the node that took over a lost one) has the dialog's stored state
(`Dialog.to_state`) and a fresh RTP port. It sends a re-INVITE with a new offer (RFC 3264 8:
the same o= session id, a higher version; a new port is a legal change of the media), in the
dialog's route set, with a CSeq above anything the old process can have used. A 2xx makes the
leg live again in this process: it is entered in the UA's call table, so the peer's BYE,
re-INVITE and INFO are answered, and the leg is returned answered with the new media. Anything
else (a refusal, 481 because the peer forgot the dialog, no answer within `timeout`) returns no
leg and what happened; the caller then ends the dialog with BYE (`send_bye`).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from .context import ALLOW, UAContext
from .dialog import Dialog
from .errors import IncompatibleMedia, ParseError
from .leg import Leg
from .orphans import CSEQ_MARGIN, send_bye
from .outbound import OutboundCall
from .sdp import SessionDescription, make_offer, media_from_answer
from .transaction_layer import TransactionFailed

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Resumed:
    """What a re-INVITE of an orphaned dialog gave: the live leg (answered) or none, and a
    short result for the leg's record (`reinvite 200`, `reinvite 488`, `reinvite timeout`)."""

    leg: Leg | None
    result: str
    dialog: Dialog | None = None  # the rebuilt dialog (for the BYE when the leg is not kept)


async def resume_dialog(
    ctx: UAContext,
    state: Mapping[str, Any],
    local_media: tuple[str, int],
    *,
    number: str,
    direction: Literal["outbound", "inbound"] = "outbound",
    timeout: float,
) -> Resumed:
    """Re-INVITE the stored dialog with a fresh offer on `local_media`; bounded by `timeout`."""
    try:
        dialog = Dialog.from_state(state)
    except ParseError as exc:
        logger.warning("orphaned dialog not usable: %s", exc)
        return Resumed(None, "no dialog")
    dialog.local_seq += CSEQ_MARGIN
    session_id = dialog.sdp_session_id or secrets.randbelow(2**31)
    # above any version the old process offered (it counted from 0): seconds since the epoch,
    # as RFC 4566 5.2 suggests for the origin's version
    version = int(time.time())
    offer = make_offer(*local_media, session_id=session_id, session_version=version)
    req = dialog.create_request("INVITE")
    req.headers.prepend("Via", ctx.via())
    req.headers.add("Contact", ctx.contact)
    req.headers.add("Allow", ALLOW)
    req.headers.add("User-Agent", ctx.config.user_agent)
    req.headers.add("Content-Type", "application/sdp")
    req.body = bytes(offer)
    dest = dialog.next_hop().hostport()
    leg = Leg(dialog.call_id, direction, number, ctx.control)
    call = OutboundCall(
        leg, req, offer, dest, timeout,
        local_media=local_media, session_id=session_id, sdp_version=version,
    )  # fmt: skip
    call.reinviting = True  # a re-INVITE from the peer meanwhile is glare (491)
    ctx.calls[dialog.call_id] = call
    try:
        handle = await ctx.endpoint.request(req, dest)
        async with asyncio.timeout(timeout):
            event = await handle.final(timeout)
    except (TimeoutError, OSError, ValueError) as exc:
        ctx.calls.pop(dialog.call_id, None)
        what = "timeout" if isinstance(exc, TimeoutError) else f"failed: {type(exc).__name__}"
        return Resumed(None, f"reinvite {what}", dialog)
    finally:
        call.reinviting = False
    if isinstance(event, TransactionFailed):
        ctx.calls.pop(dialog.call_id, None)
        return Resumed(None, f"reinvite {event.reason}", dialog)
    if not 200 <= event.status < 300:
        ctx.calls.pop(dialog.call_id, None)
        return Resumed(None, f"reinvite {event.status}", dialog)
    dialog.update_target(event)
    ack = dialog.create_request("ACK", cseq=req.cseq.number)
    ack.headers.prepend("Via", ctx.via())
    call.ack, call.ack_dest = ack, dest
    await ctx.endpoint.send_raw(ack, dest)
    try:
        answer = SessionDescription.parse(event.body)
        ctx.check_media(answer)
        media = media_from_answer(offer, answer)
    except (ParseError, IncompatibleMedia) as exc:
        logger.warning("call %s: unusable answer to the recovery re-INVITE: %s",
                       dialog.call_id[:8], exc)  # fmt: skip
        ctx.calls.pop(dialog.call_id, None)
        return Resumed(None, "reinvite bad answer", dialog)
    leg.dialog = dialog
    leg.sip_status = event.status
    leg.mark_answered(media)
    call.heard_anything = call.provisional = call.rang = True
    call.done.set()
    logger.info("call %s: dialog recovered after a restart", dialog.call_id[:8])
    return Resumed(leg, f"reinvite {event.status}", dialog)


async def give_up(ctx: UAContext, resumed: Resumed) -> str:
    """End a dialog that was not carried on: BYE (unless the peer already ended it: 481/408
    end the dialog, RFC 3261 12.2.1.2). Returns the result to record."""
    if resumed.dialog is None or resumed.result in ("reinvite 481", "reinvite 408"):
        return resumed.result
    return f"{resumed.result}, {await send_bye(ctx, resumed.dialog)}"
