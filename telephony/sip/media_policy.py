"""Where we agree to send a call's audio: the SDP address policy (issue 13 finding 4).

An offer or answer whose audio stream points at a multicast, unspecified (0.0.0.0, `::`),
reserved or broadcast address, at a host name instead of an address, at loopback while our SIP
is not itself on loopback, or at a port below 1024 is refused: 488 to an offer, BYE after an
answer. RFC 2543-style hold (c=0.0.0.0) is therefore refused too; holds use the direction
attributes of RFC 3264 (a=sendonly / inactive), which every peer we know sends.
"""

from __future__ import annotations

import ipaddress

from .errors import IncompatibleMedia
from .sdp import SessionDescription

MIN_MEDIA_PORT = 1024


def is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return host == "localhost"


def media_address_problem(sd: SessionDescription, *, allow_loopback: bool) -> str | None:
    """Why the audio stream's address may not be used, or None when it may."""
    try:
        _, m = sd.audio()
    except IncompatibleMedia:
        return None  # no active audio stream: nothing will be sent; negotiation decides
    host = m.connection or sd.connection
    if host is None:
        return "no c= line for the audio stream"
    try:
        addr = ipaddress.ip_address(host)
    except ValueError:
        return "media address is not an IP address"
    if addr.is_multicast:
        return "multicast media address"
    if addr.is_unspecified:
        return "unspecified media address"
    if addr.is_loopback and not allow_loopback:
        return "loopback media address"
    if addr.is_reserved or (addr.version == 4 and addr == ipaddress.IPv4Address("255.255.255.255")):
        return "reserved media address"
    if m.port < MIN_MEDIA_PORT:
        return f"media port below {MIN_MEDIA_PORT}"
    return None


def check_media_address(sd: SessionDescription, *, allow_loopback: bool) -> None:
    """Raise IncompatibleMedia (488) when `media_address_problem` finds one."""
    problem = media_address_problem(sd, allow_loopback=allow_loopback)
    if problem is not None:
        raise IncompatibleMedia(problem)


__all__ = ["MIN_MEDIA_PORT", "check_media_address", "is_loopback", "media_address_problem"]
