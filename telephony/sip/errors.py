"""Errors raised by the SIP stack.

The hierarchy (each error carries the context it was raised in: call id, SIP status, field)::

    SipError
    ├── ParseError                 malformed bytes; `status_hint` is the response to send (400)
    │   ├── MessageTooLarge        over a size limit (513 Message Too Large)
    │   ├── MissingHeader          a mandatory header is absent (400)
    │   └── SdpError               a malformed session description (400)
    ├── IncompatibleMedia          an SDP offer with nothing we can accept (488)
    ├── AuthError                  a challenge we cannot (or may no longer) answer
    ├── TransportError             a socket could not send or connect
    ├── TransactionError           a message that does not fit a transaction's state
    └── UAError                    user-agent level failures
        ├── RegistrationError      REGISTER failed (timeout, rejected)
        │   └── RegistrationAuthError   wrong credentials: the registrar kept challenging
        └── LegError               an operation not allowed in a leg's current state
"""

from __future__ import annotations


class SipError(Exception):
    """Base of every error raised by telephony.sip."""

    def __init__(
        self, message: str, *, call_id: str | None = None, status: int | None = None
    ) -> None:
        super().__init__(message)
        self.call_id = call_id
        self.status = status


class ParseError(SipError, ValueError):
    """Bytes that are not a well-formed SIP message (or part of one).

    `status_hint` is the status code a server should answer with when it can answer at all.
    """

    status_hint: int = 400

    def __init__(self, message: str, *, field: str | None = None, call_id: str | None = None):
        super().__init__(message, call_id=call_id, status=self.status_hint)
        self.field = field


class MessageTooLarge(ParseError):
    """A message, header line or body over the configured limit (RFC 3261 21.5.11)."""

    status_hint = 513


class MissingHeader(ParseError):
    """A request lacks one of the headers RFC 3261 section 8.1.1 makes mandatory."""


class SdpError(ParseError):
    """A session description that does not follow RFC 4566."""


class IncompatibleMedia(SipError):
    """An offer without any codec we support (RFC 3264 6: answer 488 Not Acceptable Here)."""

    def __init__(self, message: str, *, call_id: str | None = None) -> None:
        super().__init__(message, call_id=call_id, status=488)


class AuthError(SipError):
    """A digest challenge that cannot be answered (unknown algorithm, no qop we support...)."""


class TransportError(SipError):
    """A send or connect failed at the socket level."""


class TransactionError(SipError):
    """A message or command that does not fit the transaction's current state."""


class UAError(SipError):
    """Failures of the user agent as a whole."""


class RegistrationError(UAError):
    """The registrar did not accept our REGISTER (timeout, 4xx-6xx)."""


class RegistrationAuthError(RegistrationError):
    """The registrar rejected our credentials (challenged again after we answered, or 403)."""


class LegError(UAError):
    """An operation that the leg's current state does not allow (answer an ended leg...)."""
