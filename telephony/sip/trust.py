"""Who may talk to us: the trust policy of the user agent (the `TrustPolicy` part).

Trust fails closed (issue 13 finding 6): out-of-dialog requests other than OPTIONS are accepted
only from the registrar's or trunk peer's host or the configured trusted peers (names resolved
once at start). With none of them configured nobody is trusted, unless `trusted_peers`
contains `*` (anyone may call in: for a lab, never for a 110 center on a shared network).
"""

from __future__ import annotations

import asyncio
import logging

from .config import UAConfig

logger = logging.getLogger(__name__)

ANYONE = "*"


class TrustPolicy:
    """Decides whether a source address may open dialogs with us."""

    def __init__(self, config: UAConfig) -> None:
        self._config = config
        self._ips: frozenset[str] = frozenset()
        self._trunk_ips: frozenset[str] = frozenset()
        self.anyone = ANYONE in config.trusted_peers

    async def resolve(self) -> None:
        """Resolve the registrar, trunk peer and `trusted_peers` to IP addresses (once)."""
        cfg = self._config
        names = {p for p in cfg.trusted_peers if p != ANYONE}
        for peer in (cfg.registrar, cfg.trunk_peer):
            if peer is not None:
                names.add(peer[0])
        self._ips = frozenset(await _resolve_all(names))
        if cfg.trunk_peer is not None:
            self._trunk_ips = frozenset(await _resolve_all({cfg.trunk_peer[0]}))

    def trusted_ip(self, ip: str) -> bool:
        """Out-of-dialog requests only from the registrar/trunk/trusted peers (or `*`)."""
        return self.anyone or ip in self._ips

    def is_trunk(self, ip: str) -> bool:
        """The packet came from the trunk peer's address."""
        return ip in self._trunk_ips


async def _resolve_all(names: set[str]) -> set[str]:
    loop = asyncio.get_running_loop()
    ips: set[str] = set()
    for name in names:
        try:
            infos = await loop.getaddrinfo(name, None)
        except OSError as exc:
            logger.warning("cannot resolve trusted peer %s: %s", name, exc)
            continue
        ips.update(str(info[4][0]) for info in infos)
    return ips
