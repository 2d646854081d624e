"""REGISTER (RFC 3261 section 10): register, answer 401/407 once per nonce, refresh, unregister.

`Registration` builds and sends REGISTERs through a `RequestSender` (the UA) and keeps the
refresh loop: refresh at 80 % of the granted interval; on failure retry with back-off
(1 s doubling to 30 s); an OPTIONS keep-alive to the registrar notices a registrar that went
away and came back (a restarted Kamailio forgets its location table) and registers again at once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from telephony.privacy import mask_number

from .digest import Challenge, DigestClient, choose
from .errors import AuthError, RegistrationAuthError, RegistrationError
from .message import SipRequest, SipResponse
from .transaction_layer import ClientEvent, TransactionFailed
from .uri import SipUri

if TYPE_CHECKING:
    from .context import UAContext

logger = logging.getLogger(__name__)

Send = Callable[[SipRequest], Awaitable[ClientEvent]]
BuildRegister = Callable[[int], SipRequest]
BuildOptions = Callable[[], SipRequest]
PROBE_TIMEOUT = 2.0  # a registrar that does not answer OPTIONS within this is taken as down


def challenge_of(resp: SipResponse) -> tuple[Challenge, str]:
    """The challenge to answer and the header to answer it in (RFC 3261 22.2, 22.3)."""
    if resp.status == 401:
        values, answer = resp.headers.get_all("WWW-Authenticate"), "Authorization"
    else:
        values, answer = resp.headers.get_all("Proxy-Authenticate"), "Proxy-Authorization"
    challenges = []
    for v in values:
        try:
            challenges.append(Challenge.parse(v))
        except AuthError as exc:
            logger.info("ignoring challenge: %s", exc)
    if not challenges:
        raise AuthError(f"{resp.status} without a usable digest challenge", status=resp.status)
    return choose(challenges), answer


def granted_expires(resp: SipResponse, contact_uri: str, asked: int) -> int:
    """The interval the registrar granted our Contact (RFC 3261 10.2.4)."""
    for c in resp.name_addrs("Contact"):
        if str(c.uri) == contact_uri:
            value = c.param("expires")
            if value and value.isdigit():
                return int(value)
    header = resp.headers.get("Expires")
    if header and header.strip().isdigit():
        return int(header.strip())
    return asked


class Registration:
    """Keeps one AoR registered; `registered` says whether the last attempt succeeded."""

    def __init__(
        self,
        *,
        user: str,
        digest: DigestClient,
        send: Send,
        build_register: BuildRegister,
        build_options: BuildOptions,
        contact_uri: str,
        expires: int,
        keepalive_interval: float = 30.0,
    ) -> None:
        self.user = user
        self._digest = digest
        self._send = send
        self._build_register = build_register
        self._build_options = build_options
        self._contact_uri = contact_uri
        self.expires = expires
        self.keepalive_interval = keepalive_interval
        self.registered = False
        self.changed = asyncio.Event()
        self.last_error: RegistrationError | None = None

    async def register(self, expires: int | None = None) -> int:
        """Send REGISTER until accepted; returns the granted interval. Raises RegistrationError."""
        asked = self.expires if expires is None else expires
        req = self._build_register(asked)
        answered_nonces: set[str] = set()
        for _ in range(4):
            ev = await self._send(req)
            if isinstance(ev, TransactionFailed):
                raise RegistrationError(f"registrar did not answer REGISTER ({ev.reason})")
            if 200 <= ev.status < 300:
                granted = granted_expires(ev, self._contact_uri, asked) if asked else 0
                self._set_registered(asked > 0)
                return granted
            if ev.status in (401, 407):
                try:
                    challenge, header = challenge_of(ev)
                except AuthError as exc:
                    raise RegistrationAuthError(str(exc), status=ev.status) from exc
                if answered_nonces and not challenge.stale:
                    # RFC 3261 22.2: a second challenge after our answer means bad credentials
                    raise RegistrationAuthError(
                        f"registrar rejected the credentials of {mask_number(self.user)}",
                        status=ev.status,
                    )
                answered_nonces.add(challenge.nonce)
                req = self._build_register(asked)
                req.headers.add(
                    header, self._digest.authorization(challenge, "REGISTER", str(req.uri))
                )
                continue
            if ev.status == 423:  # Interval Too Brief: use the registrar's Min-Expires (10.2.8)
                minimum = (ev.headers.get("Min-Expires") or "").strip()
                if not minimum.isdigit():
                    raise RegistrationError("423 without Min-Expires", status=423)
                asked = int(minimum)
                req = self._build_register(asked)
                continue
            if ev.status == 403:
                raise RegistrationAuthError("registrar refused us (403)", status=403)
            raise RegistrationError(
                f"REGISTER failed with {ev.status} {ev.reason}", status=ev.status
            )
        raise RegistrationError("REGISTER: too many challenges")

    def _set_registered(self, value: bool) -> None:
        if value != self.registered:
            logger.info("registration of %s: %s", mask_number(self.user), "up" if value else "down")
        self.registered = value
        self.changed.set()

    async def keep(self, first_interval: int) -> None:
        """Refresh forever (a task owned by the UA, cancelled at stop)."""
        interval = first_interval
        backoff = 1.0
        loop = asyncio.get_running_loop()
        refresh_at = loop.time() + max(1.0, interval * 0.8)
        peer_was_down = False
        while True:
            now = loop.time()
            wait = min(refresh_at - now, self.keepalive_interval)
            if wait > 0:
                await asyncio.sleep(wait)
            if loop.time() < refresh_at:
                up = await self._probe()
                if up and not peer_was_down:
                    continue
                peer_was_down = not up
                if not up:
                    self._set_registered(False)
                    continue
            try:
                interval = await self.register()
                backoff = 1.0
                peer_was_down = False
                refresh_at = loop.time() + max(1.0, interval * 0.8)
            except RegistrationError as exc:
                self.last_error = exc
                self._set_registered(False)
                logger.warning("re-registration failed (%s); retrying in %.0f s", exc, backoff)
                refresh_at = loop.time() + backoff
                backoff = min(backoff * 2, 30.0)

    async def _probe(self) -> bool:
        """OPTIONS to the registrar; down when no final answer within PROBE_TIMEOUT."""
        try:
            async with asyncio.timeout(PROBE_TIMEOUT):
                ev = await self._send(self._build_options())
        except TimeoutError:
            return False
        return not isinstance(ev, TransactionFailed)


class RegisterRequests:
    """Builds our REGISTERs (one Call-ID, rising CSeq; RFC 3261 10.2) and OPTIONS probes."""

    def __init__(self, ctx: UAContext, call_id: str) -> None:
        self._ctx = ctx
        self._call_id = call_id
        self._cseq = 0

    def registrar_uri(self) -> SipUri:
        cfg = self._ctx.config
        assert cfg.registrar is not None
        host, port = cfg.registrar
        return SipUri(cfg.domain or host, port=None if cfg.domain else port)

    def register(self, expires: int) -> SipRequest:
        self._cseq += 1
        aor = self._ctx.aor()
        req = self._ctx.out_of_dialog(
            "REGISTER", self.registrar_uri(), aor, call_id=self._call_id, cseq=self._cseq
        )
        req.headers.add("Contact", self._ctx.contact)
        req.headers.add("Expires", str(expires))
        return req

    def options(self) -> SipRequest:
        return self._ctx.out_of_dialog("OPTIONS", self.registrar_uri(), self._ctx.aor())


def registration_for(ctx: UAContext, call_id: str) -> Registration:
    """The `Registration` part of a UA in registrar mode."""
    requests = RegisterRequests(ctx, call_id)
    cfg = ctx.config
    return Registration(
        user=cfg.user,
        digest=ctx.digest,
        send=ctx.send_request,
        build_register=requests.register,
        build_options=requests.options,
        contact_uri=str(ctx.contact_uri),
        expires=cfg.register_expires,
        keepalive_interval=cfg.keepalive_interval,
    )
