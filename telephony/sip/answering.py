"""Inbound calls, the `InboundCalls` part of the UA: the INVITE we receive, ringing, answering,
rejecting, 487 on CANCEL (RFC 3261 9.2, 13.3), and the guard that refuses a call nobody answers."""

from __future__ import annotations

import asyncio
import logging
import secrets
from dataclasses import dataclass

from telephony.privacy import mask_number

from .builder import make_response, new_tag
from .context import UAContext
from .dialog import Dialog
from .errors import IncompatibleMedia, LegError, ParseError
from .leg import EndReason, Leg
from .message import SipRequest
from .sdp import SessionDescription, answer_offer, make_offer
from .transaction import ServerInviteTransaction, ServerTransaction, server_key

logger = logging.getLogger(__name__)


@dataclass(eq=False)
class InboundCall:
    leg: Leg
    invite: SipRequest
    tx: ServerInviteTransaction
    offer: SessionDescription | None  # None: delayed offer, we offer in the 200 (RFC 3261 13.2.1)
    local_tag: str
    final_sent: bool = False
    our_offer: SessionDescription | None = None  # awaiting the answer in the ACK
    reinviting: bool = False  # our own re-INVITE is in progress (glare, RFC 3261 14.2)
    session_id: int = 0  # o= session id of our SDP, kept for every later offer/answer
    local_media: tuple[str, int] = ("0.0.0.0", 0)
    answer_sdp: SessionDescription | None = None
    sdp_version: int = 0
    peer_host: str = ""  # where the INVITE came from (its in-dialog requests may, too)


class InboundCalls:
    """Receiving and answering calls: one part of the UA, over the shared `UAContext`."""

    def __init__(self, ctx: UAContext) -> None:
        self.ctx = ctx

    async def on_invite(self, req: SipRequest, tx: ServerInviteTransaction) -> None:
        if req.call_id in self.ctx.calls:
            await self.ctx.endpoint.respond(tx, make_response(req, 482, to_tag=new_tag()))
            return
        if req.body and req.content_type != "application/sdp":
            resp = make_response(req, 415, to_tag=new_tag())
            resp.headers.add("Accept", "application/sdp")
            await self.ctx.endpoint.respond(tx, resp)
            return
        try:
            offer = SessionDescription.parse(req.body) if req.body else None
            _ = req.name_addrs("Contact")[0]
        except (ParseError, IndexError):
            await self.ctx.endpoint.respond(tx, make_response(req, 400, to_tag=new_tag()))
            return
        if offer is not None:
            try:
                self.ctx.check_media(offer)
            except IncompatibleMedia as exc:
                logger.info("call %s refused: %s", req.call_id[:8], exc)
                await self.ctx.endpoint.respond(tx, make_response(req, 488, to_tag=new_tag()))
                return
        leg = Leg(req.call_id, "inbound", req.from_.uri.user or "", self.ctx.control)
        call = InboundCall(
            leg, req, tx, offer, new_tag(), peer_host=tx.source[0] if tx.source else ""
        )
        try:
            self.ctx.incoming.put_nowait(leg)
        except asyncio.QueueFull:
            await self.ctx.endpoint.respond(tx, make_response(req, 486, to_tag=call.local_tag))
            return
        self.ctx.calls[leg.call_id] = call
        logger.info("incoming call %s from %s", leg.call_id[:8], mask_number(leg.remote_number))
        self.ctx.spawn(self._inbound_guard(call), f"sip-in-{leg.call_id[:8]}")

    async def _inbound_guard(self, call: InboundCall) -> None:
        await asyncio.sleep(self.ctx.config.inbound_answer_timeout)
        if not call.final_sent:
            logger.info("incoming call %s not answered in time: 480", call.leg.call_id[:8])
            await self.final(call, 480)
            self.ctx.finish(call, EndReason.TIMEOUT, 480)

    async def final(
        self, call: InboundCall, status: int, body: SessionDescription | None = None
    ) -> None:
        call.final_sent = True
        resp = make_response(
            call.invite, status, to_tag=call.local_tag, copy_record_route=status < 300
        )
        if status < 300:
            resp.headers.add("Contact", self.ctx.contact)
        if body is not None:
            resp.headers.add("Content-Type", "application/sdp")
            resp.body = bytes(body)
        await self.ctx.endpoint.respond(call.tx, resp)

    async def ring(self, leg: Leg) -> None:
        call = self._inbound(leg)
        resp = make_response(call.invite, 180, to_tag=call.local_tag, copy_record_route=True)
        resp.headers.add("Contact", self.ctx.contact)
        await self.ctx.endpoint.respond(call.tx, resp)
        leg.mark_ringing()

    async def answer(self, leg: Leg, local_media: tuple[str, int]) -> None:
        call = self._inbound(leg)
        call.local_media = local_media
        call.sdp_version = 1
        session_id = call.session_id = secrets.randbelow(2**31)
        if call.offer is None:  # delayed offer: ours goes in the 200, the answer in the ACK
            call.our_offer = make_offer(*local_media, session_id=session_id)
            leg.dialog = self._dialog(call)
            await self.final(call, 200, call.our_offer)
            leg.mark_answered(None)
            return
        try:
            answer, media = answer_offer(
                call.offer, local_media[0], local_media[1], session_id=session_id
            )
        except IncompatibleMedia:
            await self.final(call, 488)
            self.ctx.finish(call, EndReason.INCOMPATIBLE, 488)
            raise
        call.answer_sdp = answer
        leg.dialog = self._dialog(call)
        await self.final(call, 200, answer)
        leg.mark_answered(media)

    def _dialog(self, call: InboundCall) -> Dialog:
        dialog = Dialog.from_uas(call.invite, call.local_tag, self.ctx.contact)
        dialog.sdp_session_id, dialog.transport = call.session_id, self.ctx.config.transport
        return dialog

    async def reject(self, leg: Leg, code: int) -> None:
        call = self._inbound(leg)
        await self.final(call, code)
        reason = {486: EndReason.BUSY, 600: EndReason.BUSY, 603: EndReason.DECLINED}.get(
            code, EndReason.REJECTED
        )
        self.ctx.finish(call, reason, code)

    def _inbound(self, leg: Leg) -> InboundCall:
        call = self.ctx.calls.get(leg.call_id)
        if not isinstance(call, InboundCall) or call.final_sent:
            raise LegError("no pending inbound INVITE for this leg", call_id=leg.call_id)
        return call

    async def on_cancel(self, req: SipRequest, tx: ServerTransaction) -> None:
        """RFC 3261 9.2: 200 to the CANCEL, 487 to the INVITE if it is still pending."""
        inv_tx = self.ctx.endpoint.server_transaction(invite_key(req))
        call = self.ctx.calls.get(req.call_id)
        if inv_tx is None or not isinstance(call, InboundCall) or call.tx is not inv_tx:
            await self.ctx.endpoint.respond(tx, make_response(req, 481, to_tag=new_tag()))
            return
        await self.ctx.endpoint.respond(tx, make_response(req, 200, to_tag=call.local_tag))
        if not call.final_sent:
            await self.final(call, 487)
            self.ctx.finish(call, EndReason.CANCELLED, 487)

    async def no_ack(self, call: InboundCall) -> None:
        """Our 2xx was never ACKed (RFC 3261 13.3.1.4): BYE and end the leg."""
        logger.warning("call %s: no ACK for our 200, hanging up", call.leg.call_id[:8])
        await self.ctx.bye(call.leg)
        self.ctx.finish(call, EndReason.FAILED, None)


def invite_key(cancel: SipRequest) -> tuple[str, ...]:
    """The server-transaction key of the INVITE a CANCEL names (RFC 3261 9.2)."""
    return (*server_key(cancel)[:-1], "INVITE")
