"""Plain values shared by the SIP user agent (telephony.sip) and the media engine (telephony.media).

The user agent negotiates media by SDP offer/answer; the media engine needs only the outcome.
Neither side imports the other: both import these values.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Literal


class Codec(enum.Enum):
    """G.711 codecs with their static RTP payload types (RFC 3551)."""

    PCMU = 0
    PCMA = 8

    @property
    def payload_type(self) -> int:
        return self.value


class Direction(enum.Enum):
    """SDP media direction attribute (RFC 3264 section 6.1), seen from our side."""

    SENDRECV = "sendrecv"
    SENDONLY = "sendonly"
    RECVONLY = "recvonly"
    INACTIVE = "inactive"


@dataclass(frozen=True, slots=True)
class NegotiatedMedia:
    """The media one leg agreed on: where we listen, where we send, how we encode.

    `remote_port == 0` or an inactive direction means the peer wants no media right now (hold).
    """

    local_host: str
    local_port: int
    remote_host: str
    remote_port: int
    codec: Codec
    dtmf_payload_type: int | None  # telephone-event (RFC 4733), None when not offered
    direction: Direction = Direction.SENDRECV
    ptime_ms: int = 20


DtmfSource = Literal["rfc4733", "info", "inband"]
DTMF_DIGITS = "0123456789*#ABCD"


@dataclass(frozen=True, slots=True)
class DtmfDigit:
    """One key press, from whichever path it arrived on. `at` is a monotonic time in seconds."""

    digit: str
    source: DtmfSource
    at: float
    duration_ms: int = 0

    def __post_init__(self) -> None:
        if len(self.digit) != 1 or self.digit not in DTMF_DIGITS:
            raise ValueError(f"not a DTMF digit: {self.digit!r}")
