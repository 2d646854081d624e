"""The SIP user agent: registration or trunk mode, outbound and inbound calls, in-dialog requests.

Usage::

    ua = UserAgent(UAConfig(listen_host="127.0.0.1", listen_port=5070, registrar=("pbx", 5060),
                            user="1000", password="..."))
    await ua.start()                         # binds, registers (RegistrationAuthError on bad creds)
    leg = await ua.dial("2001", local_media=("127.0.0.1", 40000), ring_timeout=30)
    if await leg.wait_answered(35): ...      # leg.media: NegotiatedMedia for the media engine
    incoming = await ua.incoming.get()       # inbound legs arrive on this queue
    await ua.stop()

Inbound legs are delivered on `incoming` (an asyncio.Queue[Leg]); the application rings,
answers or rejects them. An inbound leg nobody answers within `inbound_answer_timeout` is
refused with 480.

Composition (no mixins): the UA owns a `UAContext` (context.py: config, transaction layer,
clock, calls table, request helpers) and hands it to its parts: `OutboundCalls` (outbound.py),
`InboundCalls` (answering.py), `InDialog` (indialog.py), `TrustPolicy` (trust.py) and, in
registrar mode, a `Registration` (registration.py). This module owns the lifecycle, routes
received requests to the parts and carries out each leg's actions (`LegControl`).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import Callable, Coroutine, Mapping
from typing import Any, Literal

from telephony.privacy import mask_number
from telephony.types import Direction

from .admission import SourceLimiter
from .answering import InboundCall, InboundCalls
from .builder import make_response, new_call_id, new_tag
from .config import DISPLAY_RE, UAConfig, validate_target
from .context import ALLOW, Call, UAContext, options_response, route_source
from .digest import DigestClient
from .errors import RegistrationError, UAError
from .gatekeeper import Gatekeeper, TrunkAuthenticator
from .indialog import InDialog
from .leg import EndReason, Leg, LegState
from .message import SipRequest, SipResponse
from .orphans import end_orphan
from .outbound import OutboundCall, OutboundCalls
from .registration import Registration, registration_for
from .resume import Resumed, give_up, resume_dialog
from .transaction import ServerInviteTransaction, ServerTransaction
from .transaction_layer import ClientEvent, TransactionLayer
from .transport import Address, open_transport
from .trust import TrustPolicy
from .uri import SipUri

logger = logging.getLogger(__name__)


class UserAgent:
    """One SIP identity on one socket; see the module docstring."""

    def __init__(self, config: UAConfig, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.config = config
        self.clock = clock
        calls: dict[str, Call] = {}
        self.trust = TrustPolicy(config)
        self.gatekeeper = Gatekeeper(
            self.trust,
            calls,
            functools.partial(options_response, user_agent=config.user_agent),
            _trunk_authenticator(config, clock),
        )
        endpoint = TransactionLayer(
            lambda cb: open_transport(
                config.transport,
                config.listen_host,
                config.listen_port,
                cb,
                tcp_max_per_source=config.tcp_max_per_source,
                tcp_idle_timeout=config.tcp_idle_timeout,
            ),
            timers=config.timers,
            clock=clock,
            on_request=self._on_request,
            on_stray_response=self._on_stray_response,
            on_2xx_unacked=self._on_2xx_unacked,
            gate=self.gatekeeper,
            limiter=SourceLimiter(config.source_rate, config.source_burst),
        )
        self.ctx = UAContext(
            config=config,
            endpoint=endpoint,
            clock=clock,
            digest=DigestClient(config.user, config.password),
            incoming=asyncio.Queue(config.incoming_queue_size),
            control=self,
            spawn=self._spawn,
            local=(config.listen_host, config.listen_port),
            calls=calls,
        )
        self.outbound = OutboundCalls(self.ctx)
        self.inbound = InboundCalls(self.ctx)
        self.in_dialog = InDialog(self.ctx)
        self.registration: Registration | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._register_task: asyncio.Task[None] | None = None
        self._started = False

    # -- what callers and tests see of the context --------------------------------------------
    @property
    def endpoint(self) -> TransactionLayer:
        return self.ctx.endpoint

    @property
    def incoming(self) -> asyncio.Queue[Leg]:
        return self.ctx.incoming

    @property
    def calls(self) -> dict[str, OutboundCall | InboundCall]:
        return self.ctx.calls

    @property
    def contact_uri(self) -> SipUri:
        return self.ctx.contact_uri

    @property
    def local_host(self) -> str:
        return self.ctx.local[0]

    def via(self) -> str:
        return self.ctx.via()

    def trusted(self, source: Address) -> bool:
        return self.trust.trusted_ip(source[0])

    @property
    def refusals(self) -> dict[str, int]:
        """Requests refused or dropped at the edge, by reason (`rate_limited`, `untrusted`...)."""
        return dict(self.endpoint.refusals)

    def target_uri(self, target: str) -> SipUri:
        return self.ctx.target_uri(target)

    async def send_request(self, req: SipRequest, dest: Address | None = None) -> ClientEvent:
        """Send a non-INVITE request and wait for its final response (or failure)."""
        return await self.ctx.send_request(req, dest)

    # -- lifecycle ---------------------------------------------------------------------------
    async def start(self) -> None:
        """Bind the socket and, in registrar mode, register (RegistrationAuthError on bad creds)."""
        await self.endpoint.start()
        assert self.endpoint.transport is not None
        host, port = self.endpoint.transport.local_address
        await self.trust.resolve()
        if host in ("0.0.0.0", "::"):
            host = await route_source(self.config)
        self.ctx.local = (host, port)
        self._started = True
        logger.info(
            "ua %s listening on %s/%s:%s",
            mask_number(self.config.user),
            self.config.transport,
            host,
            port,
        )
        if self.config.registrar is None:
            return
        self.registration = registration_for(self.ctx, new_call_id(host))
        try:
            granted = await self.registration.register()
        except RegistrationError:
            await self.endpoint.stop()
            self._started = False
            raise
        self._register_task = self._spawn(self.registration.keep(granted), "sip-register")

    async def stop(self) -> None:
        """Hang up every leg, unregister, close the socket; cancel and await our tasks."""
        if not self._started:
            return
        legs = [c.leg for c in list(self.calls.values()) if not c.leg.ended]
        if legs:
            await asyncio.gather(*(self._hangup_quietly(leg) for leg in legs))
        if self._register_task is not None:
            self._register_task.cancel()
        if self.registration is not None and self.registration.registered:
            try:
                async with asyncio.timeout(5.0):
                    await self.registration.register(expires=0)
            except (RegistrationError, TimeoutError) as exc:
                logger.warning("unregister failed: %r", exc)
        await self._cancel_tasks()
        await self.endpoint.stop()
        self._started = False

    def hand_over(self, leg: Leg) -> None:
        """Leave `leg`'s dialog to the next process of this node (a planned restart): `stop` sends
        it no BYE and this UA answers nothing more for it. The dialog is the one stored with
        the call; the next process re-INVITEs it (calls/resume.py)."""
        self.calls.pop(leg.call_id, None)
        logger.info("leg %s handed over to the next process", leg.call_id[:8])

    async def abort(self) -> None:
        """Close everything at once, telling no peer (no BYE, no unregister): a deliberate crash."""
        await self._cancel_tasks()
        await self.endpoint.stop()
        self._started = False

    async def _cancel_tasks(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _hangup_quietly(self, leg: Leg) -> None:
        try:
            async with asyncio.timeout(5.0):
                await leg.hangup()
        except (TimeoutError, UAError) as exc:
            logger.warning("hangup at stop failed for %s: %s", leg.call_id[:8], exc)
        leg.mark_ended(leg.end_reason or _local_end(leg))

    @property
    def registered(self) -> bool:
        return self.registration is not None and self.registration.registered

    async def wait_registered(self, timeout: float) -> bool:
        """True once registered (at once in trunk mode); False after `timeout`."""
        if self.registration is None:
            return self._started
        try:
            async with asyncio.timeout(timeout):
                while not self.registration.registered:
                    self.registration.changed.clear()
                    await self.registration.changed.wait()
        except TimeoutError:
            return False
        return True

    def _spawn(self, coro: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
        task: asyncio.Task[None] = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error("task %s failed", task.get_name(), exc_info=task.exception())

    # -- dialling ------------------------------------------------------------------------------
    async def dial(
        self,
        target: str,
        *,
        local_media: tuple[str, int],
        ring_timeout: float,
        caller_id: str | None = None,
    ) -> Leg:
        """Send an INVITE and return the leg at once; ValueError for an unsafe target/caller id."""
        if not self._started:
            raise UAError("user agent not started")
        ruri = self.ctx.target_uri(target)
        if caller_id is not None and not DISPLAY_RE.fullmatch(caller_id):
            raise ValueError("caller_id must be a plain number or name")
        if ring_timeout <= 0:
            raise ValueError("ring_timeout must be positive")
        call = await self.outbound.start(ruri, local_media, ring_timeout, caller_id)
        return call.leg

    # -- LegControl: what a leg asks of us ------------------------------------------------------
    async def end_orphan(self, dialog_state: Mapping[str, Any]) -> str:
        """BYE a dialog a previous process left (orphans.py); returns what came back."""
        return await end_orphan(self.ctx, dialog_state)

    async def resume_orphan(
        self,
        dialog_state: Mapping[str, Any],
        local_media: tuple[str, int],
        *,
        number: str,
        direction: Literal["outbound", "inbound"] = "outbound",
        timeout: float,
    ) -> Resumed:
        """Carry a dialog a previous process left on with a re-INVITE (resume.py)."""
        return await resume_dialog(
            self.ctx, dialog_state, local_media, number=number, direction=direction,
            timeout=timeout,
        )  # fmt: skip

    async def give_up(self, resumed: Resumed) -> str:
        """End a dialog whose recovery re-INVITE failed (BYE); returns the result to record."""
        return await give_up(self.ctx, resumed)

    def pending_state(self, leg: Leg) -> dict[str, Any] | None:
        """For an outbound leg that rings: the CANCEL a later process would send to end it."""
        call = self.calls.get(leg.call_id)
        if isinstance(call, OutboundCall):
            return self.outbound.pending_state(call)
        return None

    async def leg_ring(self, leg: Leg) -> None:
        await self.inbound.ring(leg)

    async def leg_answer(self, leg: Leg, local_media: tuple[str, int]) -> None:
        await self.inbound.answer(leg, local_media)

    async def leg_reject(self, leg: Leg, code: int) -> None:
        await self.inbound.reject(leg, code)

    async def leg_reinvite(self, leg: Leg, direction: Direction) -> int | None:
        return await self.in_dialog.reinvite(leg, direction)

    async def leg_send_info_dtmf(self, leg: Leg, digit: str) -> None:
        await self.in_dialog.send_info_dtmf(leg, digit)

    async def leg_hangup(self, leg: Leg) -> None:
        call = self.calls.get(leg.call_id)
        if call is None:
            leg.mark_ended(leg.end_reason or EndReason.NORMAL_LOCAL)
        elif leg.state == LegState.ANSWERED:
            await self.ctx.bye(leg)
            self.ctx.finish(call, EndReason.NORMAL_LOCAL, None)
        elif isinstance(call, InboundCall):
            await self.inbound.final(call, 480)
            self.ctx.finish(call, EndReason.NORMAL_LOCAL, 480)
        else:
            await self.outbound.hangup(call)

    # -- receiving ----------------------------------------------------------------------------
    async def _on_request(
        self, req: SipRequest, tx: ServerTransaction | None, source: Address
    ) -> None:
        if req.to.tag is not None:
            await self.in_dialog.on_request(req, tx)
            return
        if tx is None:
            return  # a stray ACK
        endpoint = self.endpoint  # the gatekeeper admitted it: from a trusted peer
        if req.method == "INVITE":
            assert isinstance(tx, ServerInviteTransaction)
            await self.inbound.on_invite(req, tx)
        elif req.method == "CANCEL":
            await self.inbound.on_cancel(req, tx)
        elif req.method == "OPTIONS":
            await endpoint.respond(tx, self.ctx.options_response(req))
        elif req.method == "BYE":
            await endpoint.respond(tx, make_response(req, 481, to_tag=new_tag()))
        else:
            resp = make_response(req, 405, to_tag=new_tag())
            resp.headers.add("Allow", ALLOW)
            await endpoint.respond(tx, resp)

    async def _on_stray_response(self, resp: SipResponse) -> None:
        call = self.calls.get(resp.call_id)
        if (
            isinstance(call, OutboundCall)
            and 200 <= resp.status < 300
            and resp.cseq.method == "INVITE"
        ):
            await self.outbound.resend_ack(call)
        else:
            logger.debug("stray %s response dropped", resp.status)

    async def _on_2xx_unacked(self, tx: ServerInviteTransaction) -> None:
        call = self.calls.get(tx.request.call_id)
        if isinstance(call, InboundCall):
            await self.inbound.no_ack(call)


def _trunk_authenticator(config: UAConfig, clock: Callable[[], float]) -> TrunkAuthenticator | None:
    if config.trunk_auth is None:
        return None
    user, password = config.trunk_auth
    return TrunkAuthenticator(user, password, config.sip_domain, clock)


def _local_end(leg: Leg) -> EndReason:
    return EndReason.NORMAL_LOCAL if leg.state == LegState.ANSWERED else EndReason.CANCELLED


__all__ = ["UAConfig", "UserAgent", "validate_target"]
