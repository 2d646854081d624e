"""Errors raised by the media engine.

Hierarchy::

    MediaError
    ├── PacketError            a datagram that is not a valid RTP/RTCP packet (ValueError too)
    ├── PromptError            a WAV prompt that cannot be read or converted
    ├── PortRangeExhausted     no free even port left in the engine's RTP port range
    └── EndpointClosed         an operation on an endpoint that was closed
"""

from __future__ import annotations


class MediaError(Exception):
    """Base class of every error raised by telephony.media."""


class PacketError(MediaError, ValueError):
    """A datagram that does not parse; the message names the field that is wrong or truncated."""


class PromptError(MediaError):
    """A prompt file that cannot be used; carries the path."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"prompt {path}: {reason}")
        self.path = path
        self.reason = reason


class PortRangeExhausted(MediaError):
    """Every even port of the configured range is in use (or refused by the OS)."""

    def __init__(self, lo: int, hi: int) -> None:
        super().__init__(f"no free RTP port in {lo}-{hi}")
        self.port_range = (lo, hi)


class EndpointClosed(MediaError):
    """The endpoint was closed; carries its label."""

    def __init__(self, label: str) -> None:
        super().__init__(f"endpoint {label} is closed")
        self.label = label
