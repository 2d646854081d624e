"""Ending dialogs a previous process left behind (after a crash, or for a node that was lost).

The call manager persists each answered leg's dialog (`Dialog.to_state`); after a restart the
process that recovers the call has no live `Leg`, only that state. `end_orphan` rebuilds the
dialog and sends a BYE in it (RFC 3261 15.1.1), with the non-INVITE client transaction's own
retransmissions (Timer E) and deadline (Timer F), and reports what came back. The CSeq is the
stored one plus a margin: requests sent after the state was written (a hold re-INVITE) used
higher numbers, and any larger number is valid in the dialog (RFC 3261 12.2.1.1).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from .context import UAContext
from .dialog import Dialog
from .errors import ParseError
from .transaction_layer import TransactionFailed

logger = logging.getLogger(__name__)

CSEQ_MARGIN = 1000


async def end_orphan(ctx: UAContext, state: Mapping[str, Any]) -> str:
    """Send BYE in the stored dialog; returns `bye 200`, `bye 481`, `bye timeout`, `bye failed:
    <why>` or `no dialog` (state unusable). Never raises for the far end's answer."""
    try:
        dialog = Dialog.from_state(state)
    except ParseError as exc:
        logger.warning("orphaned dialog not usable: %s", exc)
        return "no dialog"
    dialog.local_seq += CSEQ_MARGIN
    req = dialog.create_request("BYE")
    req.headers.prepend("Via", ctx.via())
    req.headers.add("User-Agent", ctx.config.user_agent)
    try:
        handle = await ctx.endpoint.request(req, dialog.next_hop().hostport())
        event = await handle.final(64 * ctx.timers.t1 + 1)
    except TimeoutError:
        return "bye timeout"
    except (OSError, ValueError) as exc:
        return f"bye failed: {type(exc).__name__}"
    if isinstance(event, TransactionFailed):
        return "bye timeout" if event.reason in ("B", "F", "timeout") else f"bye {event.reason}"
    logger.info("BYE to orphaned dialog %s: %d", dialog.call_id[:8], event.status)
    return f"bye {event.status}"
