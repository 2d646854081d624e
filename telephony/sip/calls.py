"""Call control of the UA: the mixins of outbound.py, answering.py and indialog.py, plus hangup."""

from __future__ import annotations

import asyncio

from .answering import InboundCall, InboundCalls
from .indialog import InDialog
from .leg import EndReason, Leg, LegState
from .outbound import OutboundCall, OutboundCalls, end_reason_for


class CallControl(OutboundCalls, InboundCalls, InDialog):
    """Everything about calls; `UserAgent` adds addressing, lifecycle and request routing."""

    async def leg_hangup(self, leg: Leg) -> None:
        call = self.calls.get(leg.call_id)
        if call is None:
            leg.mark_ended(leg.end_reason or EndReason.NORMAL_LOCAL)
            return
        if leg.state == LegState.ANSWERED:
            await self._bye(leg)
            self._finish(call, EndReason.NORMAL_LOCAL, None)
            return
        if isinstance(call, InboundCall):
            await self._final(call, 480)
            self._finish(call, EndReason.NORMAL_LOCAL, 480)
            return
        await self._cancel_outbound(call, EndReason.CANCELLED)
        try:
            async with asyncio.timeout(64 * self._timers.t1 + 1):
                await call.done.wait()
        except TimeoutError:
            self._finish(call, EndReason.CANCELLED, None)


__all__ = ["CallControl", "InboundCall", "OutboundCall", "end_reason_for"]
