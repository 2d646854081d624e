"""Requests inside a dialog, both ways (the `InDialog` part of the UA): BYE, re-INVITE
(hold/resume, RFC 3264 8), INFO with application/dtmf-relay, OPTIONS (RFC 3261 12.2, 14, 15)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from telephony.types import Direction, DtmfDigit

from .answering import InboundCall
from .builder import make_response
from .context import ALLOW, UAContext
from .errors import IncompatibleMedia, LegError, ParseError
from .leg import EndReason, Leg
from .message import SipRequest
from .sdp import SessionDescription, answer_offer, make_offer, media_from_answer
from .transaction import ServerInviteTransaction, ServerTransaction
from .transaction_layer import TransactionFailed

if TYPE_CHECKING:
    from .context import Call

logger = logging.getLogger(__name__)

_DTMF_SIGNALS = {"10": "*", "11": "#", "12": "A", "13": "B", "14": "C", "15": "D"}


class InDialog:
    """In-dialog requests we receive and send: one part of the UA, over the `UAContext`."""

    def __init__(self, ctx: UAContext) -> None:
        self.ctx = ctx

    async def on_request(self, req: SipRequest, tx: ServerTransaction | None) -> None:
        call = self.ctx.calls.get(req.call_id)
        dialog = call.leg.dialog if call else None
        if (
            call is None
            or dialog is None
            or req.to.tag != dialog.local_tag
            or req.from_.tag != dialog.remote_tag
        ):
            if tx is not None:
                await self.ctx.endpoint.respond(tx, make_response(req, 481))
            return
        if req.method == "ACK":
            if isinstance(call, InboundCall):
                await self.ctx.endpoint.confirm_2xx(call.tx)
                await self._answer_in_ack(call, req)
            return
        assert tx is not None
        if not dialog.accept_request(req):
            await self.ctx.endpoint.respond(tx, make_response(req, 500))  # RFC 3261 12.2.2
            return
        if req.method == "BYE":
            await self.ctx.endpoint.respond(tx, make_response(req, 200))
            self.ctx.finish(call, EndReason.NORMAL_REMOTE, None)
        elif req.method == "INVITE":
            assert isinstance(tx, ServerInviteTransaction)
            await self._on_reinvite(call, req, tx)
        elif req.method == "INFO":
            await self._info(call, req, tx)
        elif req.method == "OPTIONS":
            await self.ctx.endpoint.respond(tx, self.ctx.options_response(req))
        else:
            resp = make_response(req, 405)
            resp.headers.add("Allow", ALLOW)
            await self.ctx.endpoint.respond(tx, resp)

    async def _answer_in_ack(self, call: InboundCall, ack: SipRequest) -> None:
        """Delayed offer: the ACK carries the answer to the offer in our 200 (RFC 3264 5)."""
        offer, call.our_offer = call.our_offer, None
        if offer is None:
            return
        try:
            answer = SessionDescription.parse(ack.body)
            self.ctx.check_media(answer)
            media = media_from_answer(offer, answer)
        except (ParseError, IncompatibleMedia) as exc:
            logger.warning("call %s: no usable answer in the ACK: %s", call.leg.call_id[:8], exc)
            await self.ctx.bye(call.leg)
            self.ctx.finish(call, EndReason.INCOMPATIBLE, None)
            return
        call.leg.mark_media(media)

    async def _on_reinvite(self, call: Call, req: SipRequest, tx: ServerInviteTransaction) -> None:
        """RFC 3264 8 / RFC 3261 14.2: answer a hold/resume offer with our same address."""
        if call.reinviting:  # both sides re-INVITE at once: 491, the peer retries later
            await self.ctx.endpoint.respond(tx, make_response(req, 491))
            return
        try:
            offer = SessionDescription.parse(req.body)
            self.ctx.check_media(offer)
            call.sdp_version += 1
            answer, media = answer_offer(
                offer,
                call.local_media[0],
                call.local_media[1],
                session_id=call.session_id,
                session_version=call.sdp_version,
            )
        except (ParseError, IncompatibleMedia) as exc:
            status = 488 if isinstance(exc, IncompatibleMedia) else 400
            await self.ctx.endpoint.respond(tx, make_response(req, status))
            return
        resp = make_response(req, 200)
        resp.headers.add("Contact", self.ctx.contact)
        resp.headers.add("Content-Type", "application/sdp")
        resp.body = bytes(answer)
        await self.ctx.endpoint.respond(tx, resp)
        if isinstance(call, InboundCall):
            call.tx = tx  # the ACK for this 200 confirms the new transaction
        call.leg.mark_media(media)

    async def _info(self, call: Call, req: SipRequest, tx: ServerTransaction) -> None:
        if req.content_type != "application/dtmf-relay":
            await self.ctx.endpoint.respond(tx, make_response(req, 200 if not req.body else 415))
            return
        fields = {}
        for line in req.body.decode("utf-8", "replace").splitlines():
            k, _, v = line.partition("=")
            fields[k.strip().lower()] = v.strip()
        signal = _DTMF_SIGNALS.get(fields.get("signal", ""), fields.get("signal", ""))
        duration = fields.get("duration", "0")
        try:
            digit = DtmfDigit(
                signal, "info", self.ctx.clock(), int(duration) if duration.isdigit() else 0
            )
        except ValueError:
            await self.ctx.endpoint.respond(tx, make_response(req, 400))
            return
        await self.ctx.endpoint.respond(tx, make_response(req, 200))
        call.leg.mark_dtmf(digit)

    async def reinvite(self, leg: Leg, direction: Direction) -> int | None:
        """Offer a new direction (hold = sendonly, resume = sendrecv); RFC 3264 8.4."""
        call = self.ctx.calls.get(leg.call_id)
        dialog = leg.dialog
        if call is None or dialog is None:
            raise LegError("leg has no dialog", call_id=leg.call_id)
        call.sdp_version += 1
        offer = make_offer(
            *call.local_media,
            direction=direction,
            session_id=call.session_id,
            session_version=call.sdp_version,
        )
        req = dialog.create_request("INVITE")
        req.headers.prepend("Via", self.ctx.via())
        req.headers.add("Content-Type", "application/sdp")
        req.body = bytes(offer)
        call.reinviting = True
        try:
            handle = await self.ctx.endpoint.request(req, dialog.next_hop().hostport())
            ev = await handle.final(64 * self.ctx.timers.t1 + 1)
        except TimeoutError:
            ev = TransactionFailed("timeout")
        finally:
            call.reinviting = False
        if isinstance(ev, TransactionFailed):
            return None
        if 200 <= ev.status < 300:
            dialog.update_target(ev)
            ack = dialog.create_request("ACK", cseq=req.cseq.number)
            ack.headers.prepend("Via", self.ctx.via())
            await self.ctx.endpoint.send_raw(ack, dialog.next_hop().hostport())
            try:
                answer = SessionDescription.parse(ev.body)
                self.ctx.check_media(answer)
                leg.mark_media(media_from_answer(offer, answer))
            except (ParseError, IncompatibleMedia) as exc:
                logger.warning("call %s: bad re-INVITE answer: %s", leg.call_id[:8], exc)
        return ev.status

    async def send_info_dtmf(self, leg: Leg, digit: str) -> None:
        body = f"Signal={digit}\r\nDuration=160\r\n".encode()
        ev = await self.ctx.in_dialog(leg, "INFO", body, "application/dtmf-relay")
        if isinstance(ev, TransactionFailed) or ev.status >= 300:
            raise LegError(
                f"INFO DTMF not accepted: {getattr(ev, 'status', ev)}", call_id=leg.call_id
            )
