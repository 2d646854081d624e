"""Call control of the UA, shared part: what every call mixin relies on.

`UserAgent` (ua.py) = addressing, lifecycle, routing + `CallControl` (this module) built from
`OutboundCalls` (outbound.py), `InboundCalls` (answering.py) and `InDialog` (indialog.py).
RFC 3261 sections: 13 (INVITE), 9 (CANCEL), 15 (BYE), 12 (dialogs), 14 (re-INVITE).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any, TypeAlias, cast

from .digest import DigestClient
from .endpoint import ClientEvent, SipEndpoint, TransactionFailed
from .errors import LegError
from .leg import EndReason, Leg, LegControl
from .message import SipRequest, SipResponse
from .transaction import TimerConfig
from .transport import Address
from .uri import SipUri

if TYPE_CHECKING:
    from .answering import InboundCall
    from .outbound import OutboundCall

    Call: TypeAlias = OutboundCall | InboundCall

logger = logging.getLogger(__name__)


class CallBase:
    """State and helpers every call mixin uses; UserAgent provides the stubbed methods."""

    endpoint: SipEndpoint
    calls: dict[str, Call]
    clock: Callable[[], float]
    digest: DigestClient
    incoming: asyncio.Queue[Leg]

    def via(self) -> str:
        raise NotImplementedError

    @property
    def contact(self) -> str:
        raise NotImplementedError

    def _out_of_dialog(
        self,
        method: str,
        ruri: SipUri,
        to: SipUri,
        *,
        call_id: str | None = None,
        cseq: int = 1,
        from_display: str | None = None,
    ) -> SipRequest:
        raise NotImplementedError

    def restamp(self, req: SipRequest, cseq: int) -> SipRequest:
        raise NotImplementedError

    def dest_for(self, uri: SipUri) -> Address:
        raise NotImplementedError

    def _spawn(self, coro: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
        raise NotImplementedError

    def options_response(self, req: SipRequest) -> SipResponse:
        raise NotImplementedError

    def invite_key(self, cancel: SipRequest) -> tuple[str, ...]:
        raise NotImplementedError

    @property
    def inbound_answer_timeout(self) -> float:
        raise NotImplementedError

    def as_control(self) -> LegControl:
        """This object as the leg's controller (the full UserAgent implements LegControl)."""
        return cast("LegControl", self)

    @property
    def _timers(self) -> TimerConfig:
        return self.endpoint.timers

    def _finish(self, call: Call, reason: EndReason, status: int | None) -> None:
        call.leg.mark_ended(reason, status)
        self.calls.pop(call.leg.call_id, None)

    async def _in_dialog(
        self, leg: Leg, method: str, body: bytes = b"", ctype: str | None = None
    ) -> ClientEvent:
        dialog = leg.dialog
        if dialog is None:
            raise LegError("leg has no dialog", call_id=leg.call_id)
        req = dialog.create_request(method)
        req.headers.prepend("Via", self.via())
        if ctype:
            req.headers.add("Content-Type", ctype)
            req.body = body
        handle = await self.endpoint.request(req, dialog.next_hop().hostport())
        try:
            return await handle.final(64 * self._timers.t1 + 1)
        except TimeoutError:
            return TransactionFailed("timeout")

    async def _bye(self, leg: Leg) -> None:
        ev = await self._in_dialog(leg, "BYE")
        if isinstance(ev, TransactionFailed) or ev.status >= 300:
            logger.info("BYE for %s: %s", leg.call_id[:8], getattr(ev, "status", ev))
