"""What every part of the user agent shares: `UAContext`.

The UA is composed of small parts over one context (no mixins): `OutboundCalls` (outbound.py),
`InboundCalls` (answering.py), `InDialog` (indialog.py), `TrustPolicy` (trust.py) and the
`Registration` (registration.py). The context holds the configuration, the transaction layer,
the clock, the table of live calls and the helpers that address and build requests; each part
gets the context and nothing else of the UA.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, TypeAlias

from .builder import make_response, new_branch, new_call_id, new_tag
from .config import UAConfig, validate_target
from .digest import DigestClient
from .errors import LegError
from .headers import Headers
from .leg import EndReason, Leg, LegControl
from .media_policy import check_media_address, is_loopback
from .message import SipRequest, SipResponse
from .sdp import SessionDescription
from .transaction import TimerConfig
from .transaction_layer import ClientEvent, TransactionFailed, TransactionLayer
from .transport import Address
from .uri import NameAddr, SipUri

if TYPE_CHECKING:
    from .answering import InboundCall
    from .outbound import OutboundCall

Call: TypeAlias = "OutboundCall | InboundCall"

logger = logging.getLogger(__name__)

ALLOW = "INVITE, ACK, CANCEL, BYE, OPTIONS, INFO"
Spawn = Callable[[Coroutine[Any, Any, None], str], "asyncio.Task[None]"]


@dataclass(eq=False)
class UAContext:
    """The shared state of one user agent and the helpers its parts use to send."""

    config: UAConfig
    endpoint: TransactionLayer
    clock: Callable[[], float]
    digest: DigestClient
    incoming: asyncio.Queue[Leg]
    control: LegControl  # the UA: what a new `Leg` calls for ring/answer/hangup
    spawn: Spawn  # start a task the UA owns (cancelled and awaited at stop)
    local: Address  # our address for Via and Contact (the route source when bound to 0.0.0.0)
    calls: dict[str, Call] = field(default_factory=dict)

    @property
    def timers(self) -> TimerConfig:
        return self.endpoint.timers

    # -- addressing ---------------------------------------------------------------------------
    @property
    def contact_uri(self) -> SipUri:
        params = (("transport", "tcp"),) if self.config.transport == "tcp" else ()
        return SipUri(self.local[0], user=self.config.user, port=self.local[1], params=params)

    @property
    def contact(self) -> str:
        return f"<{self.contact_uri}>"

    def via(self) -> str:
        proto = self.config.transport.upper()
        return f"SIP/2.0/{proto} {self.local[0]}:{self.local[1]};branch={new_branch()};rport"

    def aor(self) -> SipUri:
        return SipUri(self.config.sip_domain, user=self.config.user)

    def proxy(self) -> Address | None:
        """Where out-of-dialog requests go: the registrar (outbound proxy) or the trunk peer."""
        return self.config.registrar or self.config.trunk_peer

    def dest_for(self, uri: SipUri) -> Address:
        return self.proxy() or uri.hostport()

    def target_uri(self, target: str) -> SipUri:
        """The Request-URI for a dial target (validated: ValueError for anything unsafe)."""
        uri, user = validate_target(target)
        if uri is not None:
            return uri
        cfg = self.config
        if cfg.trunk_peer and not cfg.registrar:
            host, port = cfg.trunk_peer
            return SipUri(cfg.domain or host, user=user, port=None if cfg.domain else port)
        return SipUri(cfg.sip_domain, user=user)

    # -- building and sending requests -------------------------------------------------------
    def out_of_dialog(
        self,
        method: str,
        ruri: SipUri,
        to: SipUri,
        *,
        call_id: str | None = None,
        cseq: int = 1,
        from_display: str | None = None,
        from_user: str | None = None,
    ) -> SipRequest:
        h = Headers()
        h.add("Via", self.via())
        h.add("Max-Forwards", "70")
        aor = self.aor() if from_user is None else replace(self.aor(), user=from_user)
        h.add(
            "From",
            str(NameAddr(aor, display_name=from_display, params=(("tag", new_tag()),))),
        )
        h.add("To", str(NameAddr(to)))
        h.add("Call-ID", call_id or new_call_id(self.local[0]))
        h.add("CSeq", f"{cseq} {method}")
        h.add("User-Agent", self.config.user_agent)
        return SipRequest(method=method, uri=ruri, headers=h)

    def restamp(self, req: SipRequest, cseq: int) -> SipRequest:
        """The same request with a fresh Via branch and a new CSeq number (after a challenge)."""
        h = req.headers.copy()
        h.set("Via", self.via())
        h.set("CSeq", f"{cseq} {req.method}")
        return SipRequest(method=req.method, uri=req.uri, headers=h, body=req.body)

    async def send_request(self, req: SipRequest, dest: Address | None = None) -> ClientEvent:
        """Send a non-INVITE request and wait for its final response (or failure)."""
        handle = await self.endpoint.request(req, dest or self.dest_for(req.uri))
        try:
            return await handle.final(64 * self.timers.t1 + 5)
        except TimeoutError:
            return TransactionFailed("timeout")

    async def in_dialog(
        self, leg: Leg, method: str, body: bytes = b"", ctype: str | None = None
    ) -> ClientEvent:
        """Send `method` inside the leg's dialog and wait for the final response."""
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
            return await handle.final(64 * self.timers.t1 + 1)
        except TimeoutError:
            return TransactionFailed("timeout")

    async def bye(self, leg: Leg) -> None:
        ev = await self.in_dialog(leg, "BYE")
        if isinstance(ev, TransactionFailed) or ev.status >= 300:
            logger.info("BYE for %s: %s", leg.call_id[:8], getattr(ev, "status", ev))

    def options_response(self, req: SipRequest) -> SipResponse:
        return options_response(req, self.config.user_agent)

    # -- media -------------------------------------------------------------------------------
    def check_media(self, sd: SessionDescription) -> None:
        """The SDP address policy (media_policy.py): IncompatibleMedia (488) when refused.
        Loopback media is allowed only while our SIP is itself on loopback."""
        check_media_address(sd, allow_loopback=is_loopback(self.local[0]))

    # -- the calls table ----------------------------------------------------------------------
    def finish(self, call: Call, reason: EndReason, status: int | None) -> None:
        """End the call's leg and forget the call."""
        call.leg.mark_ended(reason, status)
        self.calls.pop(call.leg.call_id, None)


def options_response(req: SipRequest, user_agent: str) -> SipResponse:
    """200 to an OPTIONS: what we allow and accept (RFC 3261 11.2)."""
    resp = make_response(req, 200, to_tag=new_tag())
    resp.headers.add("Allow", ALLOW)
    resp.headers.add("Accept", "application/sdp, application/dtmf-relay")
    resp.headers.add("User-Agent", user_agent)
    return resp


async def route_source(config: UAConfig) -> str:
    """Our address towards the registrar/trunk (for Via and Contact when bound to 0.0.0.0)."""
    peer = config.registrar or config.trunk_peer or ("127.0.0.1", 9)
    infos = await asyncio.get_running_loop().getaddrinfo(peer[0], peer[1], family=socket.AF_INET)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.connect(infos[0][4])  # UDP connect sends nothing: it only picks the route
        return str(s.getsockname()[0])
