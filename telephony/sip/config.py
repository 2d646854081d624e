"""User-agent configuration and the validation of what we are asked to dial."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

from .transaction import TimerConfig
from .uri import SipUri

NUMBER_RE = re.compile(r"[0-9A-Za-z+*._-]{1,64}")
# a caller id's display name: letters of any script (110指挥中心), digits, a few marks; no
# quotes, backslashes or control characters (it is quoted into From, RFC 3261 25.1)
DISPLAY_RE = re.compile(r"[\w+*.() -]{1,64}")


@dataclass(frozen=True)
class UAConfig:
    """Everything the UA needs; built by the composition root (api/) from settings."""

    listen_host: str
    listen_port: int
    registrar: tuple[str, int] | None
    user: str
    password: str = field(repr=False)
    transport: Literal["udp", "tcp"] = "udp"
    domain: str | None = None
    trunk_peer: tuple[str, int] | None = None
    trusted_peers: frozenset[str] = frozenset()  # IPs or names; "*" = anyone (lab only)
    trunk_auth: tuple[str, str] | None = field(default=None, repr=False)  # (user, password)
    register_expires: int = 300
    user_agent: str = "linkcall"
    timers: TimerConfig = field(default_factory=TimerConfig)
    keepalive_interval: float = 30.0
    inbound_answer_timeout: float = 120.0
    incoming_queue_size: int = 64
    source_rate: float = 50.0  # messages/s from one untrusted source before it is dropped
    source_burst: float = 100.0
    tcp_max_per_source: int = 16
    tcp_idle_timeout: float = 300.0
    caller_name: str | None = None  # From display name of outbound calls (caller id)
    caller_number: str | None = None  # From user of outbound calls; default: `user`

    def __post_init__(self) -> None:
        if not NUMBER_RE.fullmatch(self.user):
            raise ValueError("user must be a plain SIP user part")
        if self.caller_name is not None and not DISPLAY_RE.fullmatch(self.caller_name):
            raise ValueError("caller_name must be a plain name (letters, digits, spaces)")
        if self.caller_number is not None and not NUMBER_RE.fullmatch(self.caller_number):
            raise ValueError("caller_number must be a plain SIP user part")
        if self.transport not in ("udp", "tcp"):
            raise ValueError("transport must be 'udp' or 'tcp'")
        if self.trunk_auth is not None and self.trunk_peer is None:
            raise ValueError("trunk_auth needs a trunk_peer")
        if self.source_rate <= 0 or self.source_burst < 1:
            raise ValueError("source_rate must be positive and source_burst at least 1")

    @property
    def sip_domain(self) -> str:
        if self.domain:
            return self.domain
        peer = self.registrar or self.trunk_peer
        return peer[0] if peer else self.listen_host


def validate_target(target: str) -> tuple[SipUri | None, str]:
    """(explicit URI or None, user part) for a dial target; ValueError for anything unsafe."""
    if target.lower().startswith(("sip:", "sips:")):
        if any(c in target for c in '\r\n\t \x00<>"'):
            raise ValueError("dial target contains forbidden characters")
        uri = SipUri.parse(target)
        if uri.headers or uri.user is None:
            raise ValueError("dial target URI must have a user part and no headers")
        return uri, uri.user
    if not NUMBER_RE.fullmatch(target):
        raise ValueError("dial target must be a number or user part ([0-9A-Za-z+*._-], at most 64)")
    return None, target
