"""Call control of the UA: outbound INVITE with its failure classes, inbound INVITE, dialogs.

`CallControl` is the part of `UserAgent` that drives legs (ua.py keeps lifecycle, addressing and
request routing). RFC 3261 sections: 13 (INVITE), 9 (CANCEL), 15 (BYE), 12 (dialogs), 14
(re-INVITE); RFC 3264 for the SDP; application/dtmf-relay INFO as sent by common phones.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from telephony.privacy import mask_number
from telephony.types import Direction, DtmfDigit

from .builder import make_response, new_tag
from .dialog import Dialog
from .digest import DigestClient
from .endpoint import ClientEvent, ClientHandle, SipEndpoint, TransactionFailed
from .errors import AuthError, IncompatibleMedia, LegError, ParseError
from .leg import EndReason, Leg, LegState
from .message import SipRequest, SipResponse
from .registration import challenge_of
from .sdp import SessionDescription, answer_offer, make_offer, media_from_answer
from .transaction import ServerInviteTransaction, ServerTransaction, TimerConfig
from .transport import Address
from .uri import SipUri

logger = logging.getLogger(__name__)

_DTMF_SIGNALS = {"10": "*", "11": "#", "12": "A", "13": "B", "14": "C", "15": "D"}


def end_reason_for(status: int, *, rang: bool) -> EndReason:
    """Map a final failure status of our INVITE to an end reason (see docs/sip.md)."""
    if status in (486, 600):
        return EndReason.BUSY
    if status == 603:
        return EndReason.DECLINED
    if status in (404, 410, 484, 604):
        return EndReason.NOT_FOUND
    if status == 487:
        return EndReason.CANCELLED
    if status == 408:
        return EndReason.TIMEOUT if rang else EndReason.UNREACHABLE
    if status in (480, 502, 503, 504):
        return EndReason.UNREACHABLE
    if status in (401, 403, 407):
        return EndReason.AUTH_FAILED
    if status in (488, 606):
        return EndReason.INCOMPATIBLE
    if 400 <= status < 500:
        return EndReason.REJECTED
    return EndReason.FAILED


@dataclass(eq=False)
class OutboundCall:
    leg: Leg
    invite: SipRequest
    offer: SessionDescription
    dest: Address
    ring_timeout: float
    handle: ClientHandle | None = None
    heard_anything: bool = False
    provisional: bool = False
    rang: bool = False
    cancel_reason: EndReason | None = None
    cancel_sent: bool = False
    ack: SipRequest | None = None
    ack_dest: Address | None = None
    local_media: tuple[str, int] = ("0.0.0.0", 0)
    sdp_version: int = 0
    done: asyncio.Event = field(default_factory=asyncio.Event)


@dataclass(eq=False)
class InboundCall:
    leg: Leg
    invite: SipRequest
    tx: ServerInviteTransaction
    offer: SessionDescription
    local_tag: str
    final_sent: bool = False
    local_media: tuple[str, int] = ("0.0.0.0", 0)
    answer_sdp: SessionDescription | None = None
    sdp_version: int = 0


Call = OutboundCall | InboundCall


class CallControl:
    """Mixin of UserAgent: everything about calls. Relies on the attributes declared here."""

    endpoint: SipEndpoint
    calls: dict[str, Call]
    clock: Callable[[], float]
    digest: DigestClient
    incoming: asyncio.Queue[Leg]

    # provided by UserAgent (ua.py)
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

    @property
    def _timers(self) -> TimerConfig:
        return self.endpoint.timers

    # == outbound ============================================================================
    async def start_outbound(
        self, ruri: SipUri, local_media: tuple[str, int], ring_timeout: float, caller_id: str | None
    ) -> OutboundCall:
        offer = make_offer(local_media[0], local_media[1], session_id=secrets.randbelow(2**31))
        invite = self._out_of_dialog("INVITE", ruri, ruri, from_display=caller_id)
        invite.headers.add("Contact", self.contact)
        invite.headers.add("Allow", "INVITE, ACK, CANCEL, BYE, OPTIONS, INFO")
        invite.headers.add("Content-Type", "application/sdp")
        invite.body = bytes(offer)
        leg = Leg(invite.call_id, "outbound", ruri.user or "", self)
        call = OutboundCall(
            leg, invite, offer, self.dest_for(ruri), ring_timeout, local_media=local_media
        )
        self.calls[leg.call_id] = call
        logger.info("dial %s call %s", mask_number(ruri.user), leg.call_id[:8])
        call.handle = await self.endpoint.request(invite, call.dest)
        self._spawn(self._run_outbound(call), f"sip-out-{leg.call_id[:8]}")
        return call

    async def _run_outbound(self, call: OutboundCall) -> None:
        loop = asyncio.get_running_loop()
        ring_deadline = loop.time() + call.ring_timeout
        guard: float | None = None  # after CANCEL: RFC 3261 9.1, give up after 64*T1
        answered_challenges: set[str] = set()
        try:
            while not call.leg.ended:
                assert call.handle is not None
                deadline = guard if call.cancel_reason else ring_deadline
                try:
                    async with asyncio.timeout(
                        max(0.0, deadline - loop.time()) if deadline else None
                    ):
                        ev = await call.handle.events.get()
                except TimeoutError:
                    if call.cancel_reason is None:
                        await self._cancel_outbound(call, EndReason.TIMEOUT)
                        guard = loop.time() + 64 * self._timers.t1
                    else:
                        self._finish(call, call.cancel_reason, None)
                    continue
                if call.cancel_reason is not None and guard is None:
                    guard = loop.time() + 64 * self._timers.t1
                if isinstance(ev, TransactionFailed):
                    failed = EndReason.UNREACHABLE
                    reason = (
                        call.cancel_reason if call.heard_anything and call.cancel_reason else failed
                    )
                    self._finish(call, reason, None)
                    break
                await self._outbound_response(call, ev, answered_challenges)
                if call.leg.state == LegState.ANSWERED:
                    break
        finally:
            call.done.set()
        if call.leg.state == LegState.ANSWERED or call.ack is not None:
            await self._absorb_2xx(call)
        elif call.handle is not None and not call.handle.tx.terminated:
            await self._late_responses(call)

    async def _late_responses(self, call: OutboundCall) -> None:
        """The leg ended before the INVITE transaction did (nothing heard by the ring timeout):
        CANCEL a late 1xx, ACK and BYE a late 2xx (RFC 3261 9.1, 15), for at most 64*T1."""
        assert call.handle is not None
        try:
            async with asyncio.timeout(64 * self._timers.t1):
                while not call.handle.tx.terminated:
                    ev = await call.handle.events.get()
                    if isinstance(ev, TransactionFailed) or ev.status >= 300:
                        return
                    if ev.status < 200:
                        call.provisional = True
                        if not call.cancel_sent:
                            await self._send_cancel(call)
                    else:
                        await self._outbound_2xx(call, ev)
                        return
        except TimeoutError:
            return

    async def _outbound_response(
        self, call: OutboundCall, resp: SipResponse, answered: set[str]
    ) -> None:
        call.heard_anything = True
        if resp.status < 200:
            call.provisional = True
            if resp.status in (180, 183):
                call.rang = True
                call.leg.mark_ringing()
            if call.cancel_reason is not None and not call.cancel_sent:
                await self._send_cancel(call)
            return
        if resp.status < 300:
            await self._outbound_2xx(call, resp)
            return
        if resp.status in (401, 407) and call.cancel_reason is None:
            if await self._reinvite_with_auth(call, resp, answered):
                return
            self._finish(call, EndReason.AUTH_FAILED, resp.status)
            return
        reason = (
            call.cancel_reason
            if resp.status == 487 and call.cancel_reason
            else end_reason_for(resp.status, rang=call.rang)
        )
        self._finish(call, reason, resp.status)

    async def _reinvite_with_auth(
        self, call: OutboundCall, resp: SipResponse, answered: set[str]
    ) -> bool:
        """RFC 3261 22.2: answer the challenge once with a new INVITE (same Call-ID and tags)."""
        try:
            challenge, header = challenge_of(resp)
        except AuthError as exc:
            logger.warning("call %s: %s", call.leg.call_id[:8], exc)
            return False
        if answered and not challenge.stale:
            logger.warning("call %s: credentials rejected (%s)", call.leg.call_id[:8], resp.status)
            return False
        answered.add(challenge.nonce)
        invite = self.restamp(call.invite, call.invite.cseq.number + 1)
        invite.headers.remove("Authorization")
        invite.headers.remove("Proxy-Authorization")
        invite.headers.add(header, self.digest.authorization(challenge, "INVITE", str(invite.uri)))
        call.invite = invite
        call.provisional = False
        call.handle = await self.endpoint.request(invite, call.dest)
        return True

    async def _outbound_2xx(self, call: OutboundCall, resp: SipResponse) -> None:
        try:
            dialog = Dialog.from_uac(call.invite, resp, self.contact)
        except ParseError as exc:
            logger.warning("call %s: unusable 2xx: %s", call.leg.call_id[:8], exc)
            self._finish(call, EndReason.FAILED, resp.status)
            return
        call.leg.dialog = dialog
        ack = dialog.create_request("ACK", cseq=call.invite.cseq.number)
        ack.headers.add("Via", self.via())
        call.ack, call.ack_dest = ack, dialog.next_hop().hostport()
        await self.resend_ack(call)
        if call.cancel_reason is not None or call.leg.ended:  # answered after we gave up (9.1)
            await self._bye(call.leg)
            self._finish(call, call.cancel_reason or EndReason.TIMEOUT, resp.status)
            return
        try:
            media = media_from_answer(call.offer, SessionDescription.parse(resp.body))
        except (IncompatibleMedia, ParseError) as exc:
            logger.warning("call %s: bad answer SDP: %s", call.leg.call_id[:8], exc)
            await self._bye(call.leg)
            self._finish(call, EndReason.INCOMPATIBLE, resp.status)
            return
        call.leg.sip_status = resp.status
        call.leg.mark_answered(media)

    async def resend_ack(self, call: OutboundCall) -> None:
        if call.ack is not None and call.ack_dest is not None:
            await self.endpoint.send_raw(call.ack, call.ack_dest)

    async def _absorb_2xx(self, call: OutboundCall) -> None:
        """Re-ACK retransmitted 2xx until the INVITE transaction ends (RFC 6026 Timer M)."""
        assert call.handle is not None
        try:
            async with asyncio.timeout(64 * self._timers.t1):
                while not call.handle.tx.terminated:
                    ev = await call.handle.events.get()
                    if isinstance(ev, SipResponse) and 200 <= ev.status < 300:
                        await self.resend_ack(call)
        except TimeoutError:
            return

    async def _cancel_outbound(self, call: OutboundCall, reason: EndReason) -> None:
        """Ring timeout or hangup before answer (RFC 3261 9.1): CANCEL once a 1xx was heard."""
        if call.cancel_reason is not None or call.leg.ended:
            return
        call.cancel_reason = reason
        if call.provisional:
            await self._send_cancel(call)
        elif not call.heard_anything:
            # nothing heard at all: the peer is not there; end now, the transaction cleans up
            self._finish(
                call, EndReason.UNREACHABLE if reason == EndReason.TIMEOUT else reason, None
            )

    async def _send_cancel(self, call: OutboundCall) -> None:
        call.cancel_sent = True
        inv = call.invite
        cancel = SipRequest(method="CANCEL", uri=inv.uri, headers=inv.headers.copy())
        for name in ("Contact", "Content-Type", "Allow", "Authorization", "Proxy-Authorization"):
            cancel.headers.remove(name)
        cancel.headers.set("Via", inv.headers.get_all("Via")[0])
        cancel.headers.set("CSeq", f"{inv.cseq.number} CANCEL")
        self._spawn(self._await_quietly(self.endpoint.request(cancel, call.dest)), "sip-cancel")

    async def _await_quietly(self, coro: Coroutine[Any, Any, ClientHandle]) -> None:
        handle = await coro
        try:
            await handle.final(64 * self._timers.t1 + 1)
        except TimeoutError:
            logger.info("no final response to CANCEL")

    def _finish(self, call: Call, reason: EndReason, status: int | None) -> None:
        call.leg.mark_ended(reason, status)
        self.calls.pop(call.leg.call_id, None)

    # == inbound ==============================================================================
    async def start_inbound(self, req: SipRequest, tx: ServerInviteTransaction) -> None:
        if req.call_id in self.calls:
            await self.endpoint.respond(tx, make_response(req, 482, to_tag=new_tag()))
            return
        if req.content_type != "application/sdp" or not req.body:
            # no offer in the INVITE: we only support offers in the INVITE (RFC 3261 13.2.1)
            await self.endpoint.respond(tx, make_response(req, 488, to_tag=new_tag()))
            return
        try:
            offer = SessionDescription.parse(req.body)
            _ = req.name_addrs("Contact")[0]
        except (ParseError, IndexError):
            await self.endpoint.respond(tx, make_response(req, 400, to_tag=new_tag()))
            return
        leg = Leg(req.call_id, "inbound", req.from_.uri.user or "", self)
        call = InboundCall(leg, req, tx, offer, new_tag())
        try:
            self.incoming.put_nowait(leg)
        except asyncio.QueueFull:
            await self.endpoint.respond(tx, make_response(req, 486, to_tag=call.local_tag))
            return
        self.calls[leg.call_id] = call
        logger.info("incoming call %s from %s", leg.call_id[:8], mask_number(leg.remote_number))
        self._spawn(self._inbound_guard(call), f"sip-in-{leg.call_id[:8]}")

    async def _inbound_guard(self, call: InboundCall) -> None:
        await asyncio.sleep(self.inbound_answer_timeout)
        if not call.final_sent:
            logger.info("incoming call %s not answered in time: 480", call.leg.call_id[:8])
            await self._final(call, 480)
            self._finish(call, EndReason.TIMEOUT, 480)

    async def _final(
        self, call: InboundCall, status: int, body: SessionDescription | None = None
    ) -> None:
        call.final_sent = True
        resp = make_response(
            call.invite, status, to_tag=call.local_tag, copy_record_route=status < 300
        )
        if status < 300:
            resp.headers.add("Contact", self.contact)
        if body is not None:
            resp.headers.add("Content-Type", "application/sdp")
            resp.body = bytes(body)
        await self.endpoint.respond(call.tx, resp)

    async def leg_ring(self, leg: Leg) -> None:
        call = self._inbound(leg)
        resp = make_response(call.invite, 180, to_tag=call.local_tag, copy_record_route=True)
        resp.headers.add("Contact", self.contact)
        await self.endpoint.respond(call.tx, resp)
        leg.mark_ringing()

    async def leg_answer(self, leg: Leg, local_media: tuple[str, int]) -> None:
        call = self._inbound(leg)
        call.local_media = local_media
        call.sdp_version = 1
        try:
            answer, media = answer_offer(
                call.offer, local_media[0], local_media[1], session_id=secrets.randbelow(2**31)
            )
        except IncompatibleMedia:
            await self._final(call, 488)
            self._finish(call, EndReason.INCOMPATIBLE, 488)
            raise
        call.answer_sdp = answer
        leg.dialog = Dialog.from_uas(call.invite, call.local_tag, self.contact)
        await self._final(call, 200, answer)
        leg.mark_answered(media)

    async def leg_reject(self, leg: Leg, code: int) -> None:
        call = self._inbound(leg)
        await self._final(call, code)
        reason = {486: EndReason.BUSY, 600: EndReason.BUSY, 603: EndReason.DECLINED}.get(
            code, EndReason.REJECTED
        )
        self._finish(call, reason, code)

    def _inbound(self, leg: Leg) -> InboundCall:
        call = self.calls.get(leg.call_id)
        if not isinstance(call, InboundCall) or call.final_sent:
            raise LegError("no pending inbound INVITE for this leg", call_id=leg.call_id)
        return call

    async def on_cancel(self, req: SipRequest, tx: ServerTransaction) -> None:
        """RFC 3261 9.2: 200 to the CANCEL, 487 to the INVITE if it is still pending."""
        inv_tx = self.endpoint.server_transaction(self.invite_key(req))
        call = self.calls.get(req.call_id)
        if inv_tx is None or not isinstance(call, InboundCall) or call.tx is not inv_tx:
            await self.endpoint.respond(tx, make_response(req, 481, to_tag=new_tag()))
            return
        await self.endpoint.respond(tx, make_response(req, 200, to_tag=call.local_tag))
        if not call.final_sent:
            await self._final(call, 487)
            self._finish(call, EndReason.CANCELLED, 487)

    async def no_ack(self, call: InboundCall) -> None:
        """Our 2xx was never ACKed (RFC 3261 13.3.1.4): BYE and end the leg."""
        logger.warning("call %s: no ACK for our 200, hanging up", call.leg.call_id[:8])
        await self._bye(call.leg)
        self._finish(call, EndReason.FAILED, None)

    # == in dialog =============================================================================
    async def in_dialog_request(self, req: SipRequest, tx: ServerTransaction | None) -> None:
        call = self.calls.get(req.call_id)
        dialog = call.leg.dialog if call else None
        if (
            call is None
            or dialog is None
            or req.to.tag != dialog.local_tag
            or req.from_.tag != dialog.remote_tag
        ):
            if tx is not None:
                await self.endpoint.respond(tx, make_response(req, 481))
            return
        if req.method == "ACK":
            if isinstance(call, InboundCall):
                await self.endpoint.confirm_2xx(call.tx)
            return
        assert tx is not None
        if not dialog.accept_request(req):
            await self.endpoint.respond(tx, make_response(req, 500))  # RFC 3261 12.2.2
            return
        if req.method == "BYE":
            await self.endpoint.respond(tx, make_response(req, 200))
            self._finish(call, EndReason.NORMAL_REMOTE, None)
        elif req.method == "INVITE":
            assert isinstance(tx, ServerInviteTransaction)
            await self._reinvite(call, req, tx)
        elif req.method == "INFO":
            await self._info(call, req, tx)
        elif req.method == "OPTIONS":
            await self.endpoint.respond(tx, self.options_response(req))
        else:
            resp = make_response(req, 405)
            resp.headers.add("Allow", "INVITE, ACK, CANCEL, BYE, OPTIONS, INFO")
            await self.endpoint.respond(tx, resp)

    async def _reinvite(self, call: Call, req: SipRequest, tx: ServerInviteTransaction) -> None:
        """RFC 3264 8 / RFC 3261 14.2: answer a hold/resume offer with our same address."""
        try:
            offer = SessionDescription.parse(req.body)
            call.sdp_version += 1
            answer, media = answer_offer(
                offer, call.local_media[0], call.local_media[1], session_version=call.sdp_version
            )
        except (ParseError, IncompatibleMedia) as exc:
            status = 488 if isinstance(exc, IncompatibleMedia) else 400
            await self.endpoint.respond(tx, make_response(req, status))
            return
        resp = make_response(req, 200)
        resp.headers.add("Contact", self.contact)
        resp.headers.add("Content-Type", "application/sdp")
        resp.body = bytes(answer)
        await self.endpoint.respond(tx, resp)
        if isinstance(call, InboundCall):
            call.tx = tx  # the ACK for this 200 confirms the new transaction
        call.leg.mark_media(media)

    async def _info(self, call: Call, req: SipRequest, tx: ServerTransaction) -> None:
        if req.content_type != "application/dtmf-relay":
            await self.endpoint.respond(tx, make_response(req, 200 if not req.body else 415))
            return
        fields = {}
        for line in req.body.decode("utf-8", "replace").splitlines():
            k, _, v = line.partition("=")
            fields[k.strip().lower()] = v.strip()
        signal = _DTMF_SIGNALS.get(fields.get("signal", ""), fields.get("signal", ""))
        duration = fields.get("duration", "0")
        try:
            digit = DtmfDigit(
                signal, "info", self.clock(), int(duration) if duration.isdigit() else 0
            )
        except ValueError:
            await self.endpoint.respond(tx, make_response(req, 400))
            return
        await self.endpoint.respond(tx, make_response(req, 200))
        call.leg.mark_dtmf(digit)

    # == hangup / BYE / INFO out ===============================================================
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

    async def leg_reinvite(self, leg: Leg, direction: Direction) -> int | None:
        """Offer a new direction (hold = sendonly, resume = sendrecv); RFC 3264 8.4."""
        call = self.calls.get(leg.call_id)
        dialog = leg.dialog
        if call is None or dialog is None:
            raise LegError("leg has no dialog", call_id=leg.call_id)
        call.sdp_version += 1
        offer = make_offer(*call.local_media, direction=direction, session_version=call.sdp_version)
        req = dialog.create_request("INVITE")
        req.headers.prepend("Via", self.via())
        req.headers.add("Content-Type", "application/sdp")
        req.body = bytes(offer)
        handle = await self.endpoint.request(req, dialog.next_hop().hostport())
        try:
            ev = await handle.final(64 * self._timers.t1 + 1)
        except TimeoutError:
            ev = TransactionFailed("timeout")
        if isinstance(ev, TransactionFailed):
            return None
        if 200 <= ev.status < 300:
            dialog.update_target(ev)
            ack = dialog.create_request("ACK", cseq=req.cseq.number)
            ack.headers.prepend("Via", self.via())
            await self.endpoint.send_raw(ack, dialog.next_hop().hostport())
            try:
                leg.mark_media(media_from_answer(offer, SessionDescription.parse(ev.body)))
            except (ParseError, IncompatibleMedia) as exc:
                logger.warning("call %s: bad re-INVITE answer: %s", leg.call_id[:8], exc)
        return ev.status

    async def leg_send_info_dtmf(self, leg: Leg, digit: str) -> None:
        body = f"Signal={digit}\r\nDuration=160\r\n".encode()
        ev = await self._in_dialog(leg, "INFO", body, "application/dtmf-relay")
        if isinstance(ev, TransactionFailed) or ev.status >= 300:
            raise LegError(
                f"INFO DTMF not accepted: {getattr(ev, 'status', ev)}", call_id=leg.call_id
            )


__all__ = ["CallControl", "InboundCall", "OutboundCall", "end_reason_for"]
