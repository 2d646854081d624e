"""Outbound calls, the `OutboundCalls` part of the UA: INVITE with digest auth, 1xx/2xx/3xx-6xx,
ring timeout, CANCEL (RFC 3261 9.1, 13, 17.1.1, 22) and the mapping of every failure to an
`EndReason`."""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any

from telephony.privacy import mask_number
from telephony.types import NegotiatedMedia

from .context import ALLOW, UAContext
from .dialog import Dialog
from .errors import AuthError, IncompatibleMedia, ParseError
from .leg import EndReason, Leg, LegState
from .message import SipRequest, SipResponse
from .orphans import cancel_state
from .registration import challenge_of
from .sdp import SessionDescription, make_offer, media_from_answer
from .transaction_layer import ClientHandle, TransactionFailed
from .transport import Address
from .uri import NameAddr, SipUri

logger = logging.getLogger(__name__)


def build_cancel(inv: SipRequest) -> SipRequest:
    """The CANCEL of `inv` (RFC 3261 9.1): its Request-URI, Call-ID, From, To, CSeq number and
    top Via."""
    cancel = SipRequest(method="CANCEL", uri=inv.uri, headers=inv.headers.copy())
    for name in ("Contact", "Content-Type", "Allow", "Authorization", "Proxy-Authorization"):
        cancel.headers.remove(name)
    cancel.headers.set("Via", inv.headers.get_all("Via")[0])
    cancel.headers.set("CSeq", f"{inv.cseq.number} CANCEL")
    return cancel


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
    reinviting: bool = False  # our own re-INVITE is in progress (glare, RFC 3261 14.2)
    session_id: int = 0  # o= session id of our SDP, kept for every later offer/answer
    done: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def peer_host(self) -> str:
        """Where the INVITE went (its in-dialog requests may come from there)."""
        return self.dest[0]


class OutboundCalls:
    """Placing calls: one part of the UA, working over the shared `UAContext`."""

    def __init__(self, ctx: UAContext) -> None:
        self.ctx = ctx

    async def start(
        self, ruri: SipUri, local_media: tuple[str, int], ring_timeout: float, caller_id: str | None
    ) -> OutboundCall:
        offer = make_offer(local_media[0], local_media[1], session_id=secrets.randbelow(2**31))
        cfg = self.ctx.config
        name, number = caller_id or cfg.caller_name, cfg.caller_number
        invite = self.ctx.out_of_dialog("INVITE", ruri, ruri, from_display=name, from_user=number)
        if cfg.trunk_peer is not None and cfg.registrar is None:
            # trunk mode: assert who calls (RFC 3325 9.1); the trunk trusts us by address
            who = invite.from_
            invite.headers.add("P-Asserted-Identity", str(NameAddr(who.uri, who.display_name)))
        invite.headers.add("Contact", self.ctx.contact)
        invite.headers.add("Allow", ALLOW)
        invite.headers.add("Content-Type", "application/sdp")
        invite.body = bytes(offer)
        leg = Leg(invite.call_id, "outbound", ruri.user or "", self.ctx.control)
        call = OutboundCall(
            leg,
            invite,
            offer,
            self.ctx.dest_for(ruri),
            ring_timeout,
            local_media=local_media,
            session_id=offer.session_id,
        )
        self.ctx.calls[leg.call_id] = call
        logger.info("dial %s call %s", mask_number(ruri.user), leg.call_id[:8])
        call.handle = await self.ctx.endpoint.request(invite, call.dest)
        self.ctx.spawn(self._run_outbound(call), f"sip-out-{leg.call_id[:8]}")
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
                        await self.cancel(call, EndReason.TIMEOUT)
                        guard = loop.time() + 64 * self.ctx.timers.t1
                    else:
                        self.ctx.finish(call, call.cancel_reason, None)
                    continue
                if call.cancel_reason is not None and guard is None:
                    guard = loop.time() + 64 * self.ctx.timers.t1
                if isinstance(ev, TransactionFailed):
                    failed = EndReason.UNREACHABLE
                    reason = (
                        call.cancel_reason if call.heard_anything and call.cancel_reason else failed
                    )
                    self.ctx.finish(call, reason, None)
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
            async with asyncio.timeout(64 * self.ctx.timers.t1):
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
                call.leg.mark_ringing(self._early_media(call, resp))
            if call.cancel_reason is not None and not call.cancel_sent:
                await self._send_cancel(call)
            return
        if resp.status < 300:
            await self._outbound_2xx(call, resp)
            return
        if resp.status in (401, 407) and call.cancel_reason is None:
            if await self._reinvite_with_auth(call, resp, answered):
                return
            self.ctx.finish(call, EndReason.AUTH_FAILED, resp.status)
            return
        reason = (
            call.cancel_reason
            if resp.status == 487 and call.cancel_reason
            else end_reason_for(resp.status, rang=call.rang)
        )
        self.ctx.finish(call, reason, resp.status)

    def _early_media(self, call: OutboundCall, resp: SipResponse) -> NegotiatedMedia | None:
        """The media of an SDP answer in a 18x (early media, RFC 3960), if there is one."""
        if resp.content_type != "application/sdp" or not resp.body:
            return None
        try:
            answer = SessionDescription.parse(resp.body)
            self.ctx.check_media(answer)
            return media_from_answer(call.offer, answer)
        except (ParseError, IncompatibleMedia) as exc:
            logger.info("call %s: unusable early media: %s", call.leg.call_id[:8], exc)
            return None

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
        invite = self.ctx.restamp(call.invite, call.invite.cseq.number + 1)
        invite.headers.remove("Authorization")
        invite.headers.remove("Proxy-Authorization")
        invite.headers.add(
            header, self.ctx.digest.authorization(challenge, "INVITE", str(invite.uri))
        )
        call.invite = invite
        call.provisional = False
        call.handle = await self.ctx.endpoint.request(invite, call.dest)
        return True

    async def _outbound_2xx(self, call: OutboundCall, resp: SipResponse) -> None:
        try:
            dialog = Dialog.from_uac(call.invite, resp, self.ctx.contact)
        except ParseError as exc:
            logger.warning("call %s: unusable 2xx: %s", call.leg.call_id[:8], exc)
            self.ctx.finish(call, EndReason.FAILED, resp.status)
            return
        dialog.sdp_session_id, dialog.transport = call.session_id, self.ctx.config.transport
        call.leg.dialog = dialog
        ack = dialog.create_request("ACK", cseq=call.invite.cseq.number)
        ack.headers.add("Via", self.ctx.via())
        call.ack, call.ack_dest = ack, dialog.next_hop().hostport()
        await self.resend_ack(call)
        if call.cancel_reason is not None or call.leg.ended:  # answered after we gave up (9.1)
            await self.ctx.bye(call.leg)
            self.ctx.finish(call, call.cancel_reason or EndReason.TIMEOUT, resp.status)
            return
        try:
            answer = SessionDescription.parse(resp.body)
            self.ctx.check_media(answer)
            media = media_from_answer(call.offer, answer)
        except (IncompatibleMedia, ParseError) as exc:
            logger.warning("call %s: bad answer SDP: %s", call.leg.call_id[:8], exc)
            await self.ctx.bye(call.leg)
            self.ctx.finish(call, EndReason.INCOMPATIBLE, resp.status)
            return
        call.leg.sip_status = resp.status
        call.leg.mark_answered(media)

    async def resend_ack(self, call: OutboundCall) -> None:
        if call.ack is not None and call.ack_dest is not None:
            await self.ctx.endpoint.send_raw(call.ack, call.ack_dest)

    async def _absorb_2xx(self, call: OutboundCall) -> None:
        """Re-ACK retransmitted 2xx until the INVITE transaction ends (RFC 6026 Timer M)."""
        assert call.handle is not None
        try:
            async with asyncio.timeout(64 * self.ctx.timers.t1):
                while not call.handle.tx.terminated:
                    ev = await call.handle.events.get()
                    if isinstance(ev, SipResponse) and 200 <= ev.status < 300:
                        await self.resend_ack(call)
        except TimeoutError:
            return

    async def hangup(self, call: OutboundCall) -> None:
        """Hang up before answer: CANCEL (or end at once), then wait for the INVITE to end."""
        await self.cancel(call, EndReason.CANCELLED)
        try:
            async with asyncio.timeout(64 * self.ctx.timers.t1 + 1):
                await call.done.wait()
        except TimeoutError:
            self.ctx.finish(call, EndReason.CANCELLED, None)

    async def cancel(self, call: OutboundCall, reason: EndReason) -> None:
        """Ring timeout or hangup before answer (RFC 3261 9.1): CANCEL once a 1xx was heard."""
        if call.cancel_reason is not None or call.leg.ended:
            return
        call.cancel_reason = reason
        if call.provisional:
            await self._send_cancel(call)
        elif not call.heard_anything:
            # nothing heard at all: the peer is not there; end now, the transaction cleans up
            self.ctx.finish(
                call, EndReason.UNREACHABLE if reason == EndReason.TIMEOUT else reason, None
            )

    async def _send_cancel(self, call: OutboundCall) -> None:
        call.cancel_sent = True
        cancel = build_cancel(call.invite)
        self.ctx.spawn(
            self._await_quietly(self.ctx.endpoint.request(cancel, call.dest)), "sip-cancel"
        )

    def pending_state(self, call: OutboundCall) -> dict[str, Any] | None:
        """For an INVITE that rings: the CANCEL a later process would send (orphans.py)."""
        if call.leg.ended or call.leg.dialog is not None or not call.provisional:
            return None
        return cancel_state(build_cancel(call.invite), call.dest)

    async def _await_quietly(self, coro: Coroutine[Any, Any, ClientHandle]) -> None:
        handle = await coro
        try:
            await handle.final(64 * self.ctx.timers.t1 + 1)
        except TimeoutError:
            logger.info("no final response to CANCEL")
