"""linkcall's own asyncio SIP stack (RFC 3261) and user agent; see docs/sip.md.

The public surface is re-exported here; the modules underneath are the sans-IO cores
(message, uri, digest, sdp, transaction, dialog) and the I/O edge (transport, endpoint, ua).
"""

from .config import UAConfig, validate_target
from .errors import (
    AuthError,
    IncompatibleMedia,
    LegError,
    ParseError,
    RegistrationAuthError,
    RegistrationError,
    SipError,
    TransportError,
    UAError,
)
from .leg import Answered, Dtmf, Ended, EndReason, Leg, LegEvent, LegState, MediaChanged, Ringing
from .transaction import TimerConfig
from .ua import UserAgent

__all__ = [
    "Answered",
    "AuthError",
    "Dtmf",
    "EndReason",
    "Ended",
    "IncompatibleMedia",
    "Leg",
    "LegError",
    "LegEvent",
    "LegState",
    "MediaChanged",
    "ParseError",
    "RegistrationAuthError",
    "RegistrationError",
    "Ringing",
    "SipError",
    "TimerConfig",
    "TransportError",
    "UAConfig",
    "UAError",
    "UserAgent",
    "validate_target",
]
