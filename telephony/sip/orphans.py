"""Ending dialogs a previous process left behind (after a crash, or for a node that was lost).

The call manager persists each answered leg's dialog (`Dialog.to_state`), and for an INVITE
still ringing the CANCEL that would end it (`cancel_state`); after a restart the process that
recovers the call has no live `Leg`, only that state.

- `end_orphan` rebuilds the dialog and sends a BYE in it (RFC 3261 15.1.1), with the non-INVITE
  client transaction's own retransmissions (Timer E) and deadline (Timer F), and reports what
  came back. The CSeq is the stored one plus a margin: requests sent after the state was written
  (a hold re-INVITE) used higher numbers, and any larger number is valid in the dialog (RFC 3261
  12.2.1.1).
- For a ringing INVITE it sends the stored CANCEL instead (RFC 3261 9.1): the same Request-URI,
  Call-ID, From, To, CSeq number and top Via (branch) as the INVITE, so the proxy or phone
  matches it to the INVITE's server transaction even though the client transaction died with
  the old process. That needs the restarted process on the same SIP address (the Via sent-by);
  the 487 that follows goes to it and is not acknowledged (no transaction is left to do it), so
  the peer retransmits it until its Timer H (32 s) ends: the phone has stopped ringing by then.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from .context import UAContext
from .dialog import Dialog
from .errors import ParseError
from .message import SipRequest, parse_message
from .transaction_layer import TransactionFailed

logger = logging.getLogger(__name__)

CSEQ_MARGIN = 1000
PENDING_INVITE = "pending_invite"  # the key of a ringing INVITE's stored CANCEL


def cancel_state(cancel: SipRequest, dest: tuple[str, int]) -> dict[str, Any]:
    """What to store for an INVITE still ringing: the CANCEL that ends it and where it goes."""
    return {PENDING_INVITE: {"cancel": bytes(cancel).decode("utf-8", "replace"),
                             "dest": [dest[0], dest[1]]}}  # fmt: skip


async def end_orphan(ctx: UAContext, state: Mapping[str, Any]) -> str:
    """Send BYE in the stored dialog (or CANCEL for a stored ringing INVITE); returns `bye 200`,
    `bye 481`, `bye timeout`, `bye failed: <why>`, `cancel 200`, ... or `no dialog` (state
    unusable). Never raises for the far end's answer."""
    if PENDING_INVITE in state:
        return await _cancel(ctx, state[PENDING_INVITE])
    try:
        dialog = Dialog.from_state(state)
    except ParseError as exc:
        logger.warning("orphaned dialog not usable: %s", exc)
        return "no dialog"
    dialog.local_seq += CSEQ_MARGIN
    return await send_bye(ctx, dialog)


async def send_bye(ctx: UAContext, dialog: Dialog) -> str:
    """BYE in `dialog` (next CSeq); `bye <status>`, `bye timeout` or `bye failed: <why>`."""
    req = dialog.create_request("BYE")
    req.headers.prepend("Via", ctx.via())
    req.headers.add("User-Agent", ctx.config.user_agent)
    result = await _send(ctx, req, dialog.next_hop().hostport(), "bye")
    logger.info("BYE to orphaned dialog %s: %s", dialog.call_id[:8], result)
    return result


async def _cancel(ctx: UAContext, pending: Any) -> str:
    try:
        msg = parse_message(str(pending["cancel"]).encode())
        dest = (str(pending["dest"][0]), int(pending["dest"][1]))
    except (KeyError, IndexError, TypeError, ValueError, ParseError) as exc:
        logger.warning("orphaned INVITE's CANCEL not usable: %r", exc)
        return "no dialog"
    if not isinstance(msg, SipRequest) or msg.method != "CANCEL":
        return "no dialog"
    result = await _send(ctx, msg, dest, "cancel")
    logger.info("CANCEL of orphaned INVITE %s: %s", msg.call_id[:8], result)
    return result


async def _send(ctx: UAContext, req: SipRequest, dest: tuple[str, int], what: str) -> str:
    try:
        handle = await ctx.endpoint.request(req, dest)
        event = await handle.final(64 * ctx.timers.t1 + 1)
    except TimeoutError:
        return f"{what} timeout"
    except (OSError, ValueError) as exc:
        return f"{what} failed: {type(exc).__name__}"
    if isinstance(event, TransactionFailed):
        return (
            f"{what} timeout" if event.reason in ("B", "F", "timeout") else f"{what} {event.reason}"
        )
    return f"{what} {event.status}"
