"""Who may talk to us: the trust policy of the user agent (the `TrustPolicy` part).

Out-of-dialog requests other than OPTIONS are accepted only from the registrar's or trunk
peer's host or the configured trusted peers (names resolved once at start).
"""

from __future__ import annotations

import asyncio
import logging

from .config import UAConfig
from .transport import Address

logger = logging.getLogger(__name__)


class TrustPolicy:
    """Decides whether a source address may open dialogs with us."""

    def __init__(self, config: UAConfig) -> None:
        self._config = config
        self._ips: frozenset[str] = frozenset()

    async def resolve(self) -> None:
        """Resolve the registrar, trunk peer and `trusted_peers` to IP addresses (once)."""
        cfg = self._config
        names = set(cfg.trusted_peers)
        for peer in (cfg.registrar, cfg.trunk_peer):
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
        self._ips = frozenset(ips)

    def trusted(self, source: Address) -> bool:
        """Out-of-dialog requests only from the registrar/trunk/trusted peers."""
        cfg = self._config
        has_peers = bool(cfg.trusted_peers or cfg.registrar or cfg.trunk_peer)
        return not has_peers or source[0] in self._ips
