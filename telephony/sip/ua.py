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
refused with 480. Calls are driven by outbound.py, answering.py and indialog.py (through
calls.CallControl); this module owns the lifecycle, addressing, trust and request routing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from collections.abc import Callable, Coroutine
from typing import Any

from telephony.privacy import mask_number

from .builder import make_response, new_branch, new_call_id, new_tag
from .calls import CallControl, InboundCall, OutboundCall
from .config import DISPLAY_RE, UAConfig, validate_target
from .digest import DigestClient
from .endpoint import ClientEvent, SipEndpoint, TransactionFailed
from .errors import RegistrationError, UAError
from .headers import Headers
from .leg import EndReason, Leg, LegState
from .message import SipRequest, SipResponse
from .registration import Registration
from .transaction import ServerInviteTransaction, ServerTransaction, server_key
from .transport import Address, open_transport
from .uri import NameAddr, SipUri

logger = logging.getLogger(__name__)

ALLOW = "INVITE, ACK, CANCEL, BYE, OPTIONS, INFO"


class UserAgent(CallControl):
    """One SIP identity on one socket; see the module docstring."""

    def __init__(self, config: UAConfig, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.config = config
        self.clock = clock
        self.incoming: asyncio.Queue[Leg] = asyncio.Queue(config.incoming_queue_size)
        self.digest = DigestClient(config.user, config.password)
        self.endpoint = SipEndpoint(
            lambda cb: open_transport(config.transport, config.listen_host, config.listen_port, cb),
            timers=config.timers,
            clock=clock,
            on_request=self._on_request,
            on_stray_response=self._on_stray_response,
            on_2xx_unacked=self._on_2xx_unacked,
        )
        self.calls: dict[str, OutboundCall | InboundCall] = {}
        self.registration: Registration | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._register_task: asyncio.Task[None] | None = None
        self._local: Address = (config.listen_host, config.listen_port)
        self._trusted_ips: frozenset[str] = frozenset()
        self._register_call_id = ""
        self._register_cseq = 0
        self._started = False

    # -- lifecycle ---------------------------------------------------------------------------
    async def start(self) -> None:
        """Bind the socket and, in registrar mode, register (RegistrationAuthError on bad creds)."""
        await self.endpoint.start()
        assert self.endpoint.transport is not None
        host, port = self.endpoint.transport.local_address
        self._trusted_ips = await self._resolve_trusted()
        if host in ("0.0.0.0", "::"):
            host = await self._route_source()
        self._local = (host, port)
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
        self._register_call_id = new_call_id(host)
        self.registration = Registration(
            user=self.config.user,
            digest=self.digest,
            send=self.send_request,
            build_register=self._build_register,
            build_options=lambda: self._out_of_dialog(
                "OPTIONS", self._registrar_uri(), self._aor()
            ),
            contact_uri=str(self.contact_uri),
            expires=self.config.register_expires,
            keepalive_interval=self.config.keepalive_interval,
        )
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
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.endpoint.stop()
        self._started = False

    async def abort(self) -> None:
        """Close everything at once, telling no peer (no BYE, no unregister): a deliberate crash."""
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.endpoint.stop()
        self._started = False

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

    # -- addressing ---------------------------------------------------------------------------
    async def _route_source(self) -> str:
        """Our address towards the registrar/trunk (for Via and Contact when bound to 0.0.0.0)."""
        peer = self.config.registrar or self.config.trunk_peer or ("127.0.0.1", 9)
        infos = await asyncio.get_running_loop().getaddrinfo(
            peer[0], peer[1], family=socket.AF_INET
        )
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect(infos[0][4])  # UDP connect sends nothing: it only picks the route
            return str(s.getsockname()[0])

    @property
    def contact_uri(self) -> SipUri:
        params = (("transport", "tcp"),) if self.config.transport == "tcp" else ()
        return SipUri(self._local[0], user=self.config.user, port=self._local[1], params=params)

    @property
    def contact(self) -> str:
        return f"<{self.contact_uri}>"

    @property
    def local_host(self) -> str:
        return self._local[0]

    @property
    def inbound_answer_timeout(self) -> float:
        return self.config.inbound_answer_timeout

    def _aor(self) -> SipUri:
        return SipUri(self.config.sip_domain, user=self.config.user)

    def _registrar_uri(self) -> SipUri:
        assert self.config.registrar is not None
        host, port = self.config.registrar
        domain = self.config.domain or host
        return SipUri(domain, port=None if self.config.domain else port)

    def proxy(self) -> Address | None:
        """Where out-of-dialog requests go: the registrar (outbound proxy) or the trunk peer."""
        return self.config.registrar or self.config.trunk_peer

    def via(self) -> str:
        proto = self.config.transport.upper()
        return f"SIP/2.0/{proto} {self._local[0]}:{self._local[1]};branch={new_branch()};rport"

    def target_uri(self, target: str) -> SipUri:
        uri, user = validate_target(target)
        if uri is not None:
            return uri
        if self.config.trunk_peer and not self.config.registrar:
            host, port = self.config.trunk_peer
            return SipUri(
                self.config.domain or host, user=user, port=None if self.config.domain else port
            )
        return SipUri(self.config.sip_domain, user=user)

    def dest_for(self, uri: SipUri) -> Address:
        return self.proxy() or uri.hostport()

    # -- building requests -------------------------------------------------------------------
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
        h = Headers()
        h.add("Via", self.via())
        h.add("Max-Forwards", "70")
        h.add(
            "From",
            str(NameAddr(self._aor(), display_name=from_display, params=(("tag", new_tag()),))),
        )
        h.add("To", str(NameAddr(to)))
        h.add("Call-ID", call_id or new_call_id(self._local[0]))
        h.add("CSeq", f"{cseq} {method}")
        h.add("User-Agent", self.config.user_agent)
        return SipRequest(method=method, uri=ruri, headers=h)

    def _build_register(self, expires: int) -> SipRequest:
        self._register_cseq += 1
        aor = self._aor()
        req = self._out_of_dialog(
            "REGISTER",
            self._registrar_uri(),
            aor,
            call_id=self._register_call_id,
            cseq=self._register_cseq,
        )
        req.headers.add("Contact", self.contact)
        req.headers.add("Expires", str(expires))
        return req

    def restamp(self, req: SipRequest, cseq: int) -> SipRequest:
        """The same request with a fresh Via branch and a new CSeq number (after a challenge)."""
        h = req.headers.copy()
        h.set("Via", self.via())
        h.set("CSeq", f"{cseq} {req.method}")
        return SipRequest(method=req.method, uri=req.uri, headers=h, body=req.body)

    async def send_request(self, req: SipRequest, dest: Address | None = None) -> ClientEvent:
        """Send a non-INVITE request and wait for its final response (or failure)."""
        if dest is None:
            dest = self.dest_for(req.uri)
        handle = await self.endpoint.request(req, dest)
        try:
            return await handle.final(64 * self.config.timers.t1 + 5)
        except TimeoutError:
            return TransactionFailed("timeout")

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
        ruri = self.target_uri(target)
        if caller_id is not None and not DISPLAY_RE.fullmatch(caller_id):
            raise ValueError("caller_id must be a plain number or name")
        if ring_timeout <= 0:
            raise ValueError("ring_timeout must be positive")
        call = await self.start_outbound(ruri, local_media, ring_timeout, caller_id)
        return call.leg

    # -- receiving ----------------------------------------------------------------------------
    async def _resolve_trusted(self) -> frozenset[str]:
        """IP addresses of the registrar, trunk peer and `trusted_peers` (names resolved once)."""
        names = set(self.config.trusted_peers)
        for peer in (self.config.registrar, self.config.trunk_peer):
            if peer is not None:
                names.add(peer[0])
        loop = asyncio.get_running_loop()
        ips: set[str] = set()
        for name in names:
            try:
                infos = await loop.getaddrinfo(name, None)
            except OSError as exc:
                logger.warning("cannot resolve trusted peer %s: %s", name, exc)
                continue
            ips.update(str(info[4][0]) for info in infos)
        return frozenset(ips)

    def trusted(self, source: Address) -> bool:
        """Our policy: out-of-dialog requests only from the registrar/trunk/trusted peers."""
        has_peers = bool(
            self.config.trusted_peers or self.config.registrar or self.config.trunk_peer
        )
        return not has_peers or source[0] in self._trusted_ips

    async def _on_request(
        self, req: SipRequest, tx: ServerTransaction | None, source: Address
    ) -> None:
        to_tag = req.to.tag
        if to_tag is not None:
            await self.in_dialog_request(req, tx)
            return
        if tx is None:
            return  # a stray ACK
        if not self.trusted(source) and req.method != "OPTIONS":
            logger.info("refused %s from untrusted %s", req.method, source[0])
            await self.endpoint.respond(tx, make_response(req, 403, to_tag=new_tag()))
            return
        if req.method == "INVITE":
            assert isinstance(tx, ServerInviteTransaction)
            await self.start_inbound(req, tx)
        elif req.method == "CANCEL":
            await self.on_cancel(req, tx)
        elif req.method == "OPTIONS":
            await self.endpoint.respond(tx, self.options_response(req))
        elif req.method == "BYE":
            await self.endpoint.respond(tx, make_response(req, 481, to_tag=new_tag()))
        else:
            resp = make_response(req, 405, to_tag=new_tag())
            resp.headers.add("Allow", ALLOW)
            await self.endpoint.respond(tx, resp)

    def options_response(self, req: SipRequest) -> SipResponse:
        resp = make_response(req, 200, to_tag=new_tag())
        resp.headers.add("Allow", ALLOW)
        resp.headers.add("Accept", "application/sdp, application/dtmf-relay")
        resp.headers.add("User-Agent", self.config.user_agent)
        return resp

    def invite_key(self, cancel: SipRequest) -> tuple[str, ...]:
        """The server-transaction key of the INVITE a CANCEL names (RFC 3261 9.2)."""
        return (*server_key(cancel)[:-1], "INVITE")

    async def _on_stray_response(self, resp: SipResponse) -> None:
        call = self.calls.get(resp.call_id)
        if (
            isinstance(call, OutboundCall)
            and 200 <= resp.status < 300
            and resp.cseq.method == "INVITE"
        ):
            await self.resend_ack(call)
        else:
            logger.debug("stray %s response dropped", resp.status)

    async def _on_2xx_unacked(self, tx: ServerInviteTransaction) -> None:
        call = self.calls.get(tx.request.call_id)
        if isinstance(call, InboundCall):
            await self.no_ack(call)


def _local_end(leg: Leg) -> EndReason:
    return EndReason.NORMAL_LOCAL if leg.state == LegState.ANSWERED else EndReason.CANCELLED


__all__ = ["UAConfig", "UserAgent", "validate_target"]
