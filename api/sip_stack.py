"""The telephony component: our SIP user agent and the RTP media engine, built from settings.

The service starts even when the PBX is down or refuses our credentials: the API, the registry
and the scheduler keep working, /readyz says why SIP is not ready, and registration is retried
in the background with a bounded back-off.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from api.settings import Settings
from calls.component import Health
from calls.log_format import WorkerLog
from calls.media_workers.remote import RemoteMediaEngine
from telephony.media.engine import MediaEngine
from telephony.sip.errors import RegistrationAuthError, RegistrationError, SipError
from telephony.sip.ua import UAConfig, UserAgent

log = logging.getLogger(__name__)

WILDCARDS = ("0.0.0.0", "::")
RETRY_MIN_S = 2.0
RETRY_MAX_S = 60.0


def ua_config(settings: Settings) -> UAConfig:
    """The user agent's configuration from the service settings."""
    host, port = settings.sip_listen_addr
    trusted = frozenset(p.strip() for p in settings.sip_trusted_peers.split(",") if p.strip())
    return UAConfig(
        listen_host=host,
        listen_port=port,
        registrar=settings.sip_registrar_addr,
        user=settings.sip_user,
        password=settings.sip_password,
        transport="tcp" if settings.sip_transport == "tcp" else "udp",
        domain=settings.sip_domain or None,
        trunk_peer=settings.sip_trunk_peer_addr,
        trusted_peers=trusted,
        trunk_auth=_pair(settings.sip_trunk_auth),
        caller_name=settings.caller_id_name or None,
        caller_number=settings.caller_id_number or None,
    )


def _pair(user_password: str) -> tuple[str, str] | None:
    user, _, password = user_password.partition(":")
    return (user, password) if user_password else None


class Telephony:
    """Owns the UserAgent and the MediaEngine; a Component of the service."""

    name = "sip"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.ua = UserAgent(ua_config(settings))
        host = settings.sip_listen_addr[0]
        host = host if host != "0.0.0.0" else "127.0.0.1"
        self.media: MediaEngine | RemoteMediaEngine
        if settings.media_workers > 1:  # docs/media.md, "Media workers"
            self.media = RemoteMediaEngine(
                host,
                settings.rtp_port_range,
                settings.media_workers,
                lock_path=settings.data_dir / "media-workers.lock",
                log=WorkerLog(settings.log_level, settings.log_format, settings.node),
            )
        else:
            self.media = MediaEngine(host=host, port_range=settings.rtp_port_range)
        self._problem: str | None = "starting"
        self._retry_task: asyncio.Task[None] | None = None

    @property
    def trunk_mode(self) -> bool:
        return self.settings.sip_registrar_addr is None

    async def start(self) -> None:
        await self.media.start()
        try:
            await self.ua.start()
            self._problem = None
        except RegistrationError as exc:
            self._note_failure(exc)
            self._retry_task = asyncio.create_task(self._retry_start(), name="sip-register-retry")
        finally:
            self._media_follows_sip()

    def _media_follows_sip(self) -> None:
        """With SIP on a wildcard address, RTP binds the address the UA advertises in Via and
        Contact (its route towards the PBX or trunk), so every SDP offers a reachable address."""
        advertised = self.ua.local_host
        if self.settings.sip_listen_addr[0] in WILDCARDS and advertised not in WILDCARDS:
            self.media.host = advertised

    def _note_failure(self, exc: SipError) -> None:
        kind = "credentials refused" if isinstance(exc, RegistrationAuthError) else "unreachable"
        self._problem = f"registration failed ({kind}): {exc}"
        log.warning("SIP %s", self._problem)

    async def _retry_start(self) -> None:
        delay = RETRY_MIN_S
        while True:
            await asyncio.sleep(delay)
            try:
                await self.ua.start()
            except RegistrationError as exc:
                self._note_failure(exc)
                delay = min(delay * 2, RETRY_MAX_S)
                continue
            self._problem = None
            log.info("SIP registered after retry")
            return

    async def stop(self) -> None:
        if self._retry_task is not None:
            self._retry_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._retry_task
        try:
            await self.ua.stop()
        finally:
            await self.media.stop()

    def health(self) -> Health:
        if self._problem is not None:
            return Health(False, self._problem)
        if self.trunk_mode:
            if not self.settings.sip_trunk_peer:
                return Health(
                    False,
                    "neither LINKCALL_SIP_REGISTRAR nor LINKCALL_SIP_TRUNK_PEER "
                    "is set: calls cannot be placed",
                )
            return Health(
                True,
                f"trunk mode via {self.settings.sip_trunk_peer}, listening on "
                f"{self.settings.sip_listen}",
            )
        if not self.ua.registered:
            return Health(False, f"not registered to {self.settings.sip_registrar}")
        return Health(
            True, f"registered as {self.settings.sip_user} at {self.settings.sip_registrar}"
        )
