"""First contact with received bytes: parse, check, and decide what a bad message deserves.

`screen(data)` never raises for any input: it returns the checked message, or a `Rejected`
with the error and, when the bytes were a request with enough headers to address a reply,
the 4xx/5xx response to send (RFC 3261 8.2 and 16.3: 400 Bad Request, 416, 513).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from .builder import make_response
from .errors import ParseError
from .message import (
    Message,
    SipRequest,
    check_request,
    check_response,
    parse_message,
)

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Rejected:
    """Bytes that are not a usable message; `response` is what to answer, if anything."""

    error: ParseError
    response: bytes | None


def screen(data: bytes, *, stream: bool = False) -> Message | Rejected:
    try:
        msg = parse_message(data, require_length=stream)
    except ParseError as exc:
        return Rejected(exc, _reply_to_raw(data, exc))
    try:
        if isinstance(msg, SipRequest):
            check_request(msg)
        else:
            check_response(msg)
    except ParseError as exc:
        reply = None
        if isinstance(msg, SipRequest) and msg.method != "ACK":
            reply = _reply(msg, exc)
        return Rejected(exc, reply)
    return msg


def _reply(req: SipRequest, exc: ParseError) -> bytes | None:
    """A response to a request whose addressing headers are readable, else None."""
    try:
        _ = req.top_via
        for name in ("From", "To", "Call-ID", "CSeq"):
            if req.headers.get(name) is None:
                return None
        resp = make_response(req, exc.status_hint, to_tag=None)
        resp.reason = _reason_for(exc)
        return bytes(resp)
    except (ParseError, ValueError):
        return None


def _reason_for(exc: ParseError) -> str:
    base = {400: "Bad Request", 416: "Unsupported URI Scheme", 513: "Message Too Large"}
    phrase = base.get(exc.status_hint, "Bad Request")
    if exc.field:
        phrase += f" ({exc.field})"
    return phrase


def _reply_to_raw(data: bytes, exc: ParseError) -> bytes | None:
    """When the whole message failed to parse, retry on the head alone to address a reply."""
    if exc.status_hint == 513 and len(data) > 65_535:
        return None  # not worth parsing a flood
    head, _, _ = data.partition(b"\r\n\r\n")
    if not head or head.startswith(b"SIP/"):
        return None
    lines = head.split(b"\r\n")
    first = lines[0].split(b" ")
    if len(first) != 3 or first[2] != b"SIP/2.0" or first[0] == b"ACK":
        return None
    # keep only the addressing headers, with a harmless Request-URI, and try again
    keep = [b"OPTIONS sip:invalid SIP/2.0"]
    wanted = (b"via", b"v", b"from", b"f", b"to", b"t", b"call-id", b"i", b"cseq")
    for line in lines[1:]:
        name = line.split(b":", 1)[0].strip().lower()
        if name in wanted:
            keep.append(line)
    try:
        msg = parse_message(b"\r\n".join(keep) + b"\r\n\r\n")
    except ParseError:
        return None
    if not isinstance(msg, SipRequest):
        return None
    return _reply(msg, exc)
