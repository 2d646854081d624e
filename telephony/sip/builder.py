"""Identifiers and response construction (RFC 3261 8.2.6, 17.2.1, 19.3)."""

from __future__ import annotations

import secrets

from .headers import Headers
from .message import SipRequest, SipResponse

MAGIC_COOKIE = "z9hG4bK"  # RFC 3261 8.1.1.7

REASONS: dict[int, str] = {
    100: "Trying",
    180: "Ringing",
    181: "Call Is Being Forwarded",
    182: "Queued",
    183: "Session Progress",
    200: "OK",
    202: "Accepted",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    407: "Proxy Authentication Required",
    408: "Request Timeout",
    415: "Unsupported Media Type",
    416: "Unsupported URI Scheme",
    420: "Bad Extension",
    480: "Temporarily Unavailable",
    481: "Call/Transaction Does Not Exist",
    482: "Loop Detected",
    483: "Too Many Hops",
    484: "Address Incomplete",
    486: "Busy Here",
    487: "Request Terminated",
    488: "Not Acceptable Here",
    491: "Request Pending",
    500: "Server Internal Error",
    501: "Not Implemented",
    503: "Service Unavailable",
    513: "Message Too Large",
    600: "Busy Everywhere",
    603: "Decline",
    604: "Does Not Exist Anywhere",
    606: "Not Acceptable",
}


def reason_phrase(status: int) -> str:
    return REASONS.get(status, "Unknown")


def new_branch() -> str:
    return MAGIC_COOKIE + secrets.token_hex(10)


def new_tag() -> str:
    return secrets.token_hex(6)


def new_call_id(host: str) -> str:
    """Random Call-ID (RFC 3261 8.1.1.4), unique across restarts: 128 random bits."""
    return f"{secrets.token_hex(16)}@{host}"


def make_response(
    req: SipRequest,
    status: int,
    reason: str | None = None,
    *,
    to_tag: str | None = None,
    copy_record_route: bool = False,
) -> SipResponse:
    """A response to `req` (RFC 3261 8.2.6.2): Via, From, To (+tag), Call-ID, CSeq copied."""
    h = Headers()
    for via in req.headers.get_all("Via"):
        h.add("Via", via)
    if copy_record_route:
        for rr in req.headers.get_all("Record-Route"):
            h.add("Record-Route", rr)
    h.add("From", req.headers.get("From") or "")
    to = req.headers.get("To") or ""
    if to_tag is not None and status != 100:
        try:
            has_tag = req.to.tag is not None
        except ValueError:
            has_tag = True
        if not has_tag:
            to = f"{to};tag={to_tag}"
    h.add("To", to)
    h.add("Call-ID", req.headers.get("Call-ID") or "")
    h.add("CSeq", req.headers.get("CSeq") or "")
    if status == 100 and req.headers.get("Timestamp"):
        h.add("Timestamp", req.headers.get("Timestamp") or "")  # RFC 3261 8.2.6.1
    return SipResponse(status=status, reason=reason or reason_phrase(status), headers=h)
