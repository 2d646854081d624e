"""SIP messages: parse and serialise (RFC 3261 section 7), datagram and stream framing.

`parse_message(data)` takes one datagram (or one framed stream message) and returns a
`SipRequest` or `SipResponse`; `bytes(msg)` writes it back. `StreamFramer` cuts a TCP byte stream
into messages by Content-Length (RFC 3261 18.3). Every limit is checked before anything is
allocated for it; every failure is a `ParseError` naming what was wrong.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from .errors import MessageTooLarge, MissingHeader, ParseError
from .headers import CSeq, Headers, Via, canonical
from .params import is_token
from .uri import NameAddr, SipUri

SIP_VERSION = "SIP/2.0"
MAX_MESSAGE_BYTES = 65_535  # the largest UDP datagram; also our TCP per-message cap
MAX_HEADER_BYTES = 16_384
MAX_HEADERS = 128
MAX_BODY_BYTES = 32_768

_REQUEST_LINE_RE = re.compile(r"([A-Za-z0-9\-.!%*_+`'~]+) (\S+) SIP/2\.0")
_STATUS_LINE_RE = re.compile(r"SIP/2\.0 ([1-6][0-9]{2}) ?([^\x00-\x08\x0a-\x1f\x7f]*)")
_CONTENT_LENGTH_RE = re.compile(r"[0-9]{1,9}")

# RFC 3261 8.1.1: the headers every request must carry
MANDATORY_REQUEST_HEADERS = ("via", "to", "from", "call-id", "cseq")


@dataclass(eq=False)
class SipMessage:
    """Fields common to requests and responses."""

    headers: Headers = field(default_factory=Headers)
    body: bytes = b""

    # -- typed views of the headers the stack uses -------------------------------------------
    def _required(self, name: str) -> str:
        value = self.headers.get(name)
        if value is None:
            raise MissingHeader(f"missing {name}", field=name)
        return value

    @property
    def call_id(self) -> str:
        return self._required("Call-ID").strip()

    @property
    def cseq(self) -> CSeq:
        try:
            return CSeq.parse(self._required("CSeq"))
        except ValueError as exc:
            raise ParseError(str(exc), field="CSeq") from exc

    @property
    def from_(self) -> NameAddr:
        return self._name_addr("From")

    @property
    def to(self) -> NameAddr:
        return self._name_addr("To")

    def _name_addr(self, name: str) -> NameAddr:
        try:
            return NameAddr.parse(self._required(name))
        except ValueError as exc:
            raise ParseError(f"bad {name}: {exc}", field=name) from exc

    @property
    def vias(self) -> list[Via]:
        try:
            return Via.parse_all(self.headers.get_all("Via"))
        except ValueError as exc:
            raise ParseError(str(exc), field="Via") from exc

    @property
    def top_via(self) -> Via:
        vias = self.vias
        if not vias:
            raise MissingHeader("missing Via", field="Via")
        return vias[0]

    def name_addrs(self, name: str) -> list[NameAddr]:
        """Contact, Route, Record-Route... as parsed name-addr values (`*` is skipped)."""
        try:
            return [NameAddr.parse(v) for v in self.headers.get_all(name) if v != "*"]
        except ValueError as exc:
            raise ParseError(f"bad {name}: {exc}", field=name) from exc

    @property
    def content_type(self) -> str | None:
        value = self.headers.get("Content-Type")
        return value.split(";")[0].strip().lower() if value else None

    def _head_lines(self) -> list[str]:
        raise NotImplementedError

    def _comparable_headers(self) -> Headers:
        """Headers without Content-Length, which serialisation derives from the body."""
        h = self.headers.copy()
        h.remove("Content-Length")
        return h

    def __bytes__(self) -> bytes:
        headers = self.headers.copy()
        if "Content-Length" in headers or self.body:
            current = headers.get("Content-Length")
            if current is None or current.strip() != str(len(self.body)):
                headers.set("Content-Length", str(len(self.body)))
        else:
            headers.add("Content-Length", "0")
        lines = self._head_lines()
        lines.extend(f"{n}: {v}" for n, v in headers)
        return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8") + self.body


@dataclass(eq=False)
class SipRequest(SipMessage):
    method: str = "OPTIONS"
    uri: SipUri = field(default_factory=lambda: SipUri("invalid"))

    def _head_lines(self) -> list[str]:
        return [f"{self.method} {self.uri} {SIP_VERSION}"]

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SipRequest):
            return NotImplemented
        return (self.method, self.uri, self._comparable_headers(), self.body) == (
            other.method,
            other.uri,
            other._comparable_headers(),
            other.body,
        )

    def __repr__(self) -> str:
        return f"<SipRequest {self.method} {self.uri}>"


@dataclass(eq=False)
class SipResponse(SipMessage):
    status: int = 200
    reason: str = "OK"

    def _head_lines(self) -> list[str]:
        return [f"{SIP_VERSION} {self.status} {self.reason}"]

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SipResponse):
            return NotImplemented
        return (self.status, self.reason, self._comparable_headers(), self.body) == (
            other.status,
            other.reason,
            other._comparable_headers(),
            other.body,
        )

    def __repr__(self) -> str:
        return f"<SipResponse {self.status} {self.reason}>"


Message = SipRequest | SipResponse


def _split_head(data: bytes) -> tuple[bytes, bytes]:
    idx = data.find(b"\r\n\r\n")
    if idx >= 0:
        return data[:idx], data[idx + 4 :]
    idx = data.find(b"\n\n")  # tolerate bare-LF peers (RFC 3261 7.5 asks for CRLF)
    if idx >= 0:
        return data[:idx], data[idx + 2 :]
    # a message with no body and no blank line: accept only on a datagram
    return data.rstrip(b"\r\n"), b""


def _header_lines(head: str) -> list[str]:
    """Split the head into logical lines, unfolding continuation lines (RFC 3261 7.3.1)."""
    raw = re.split(r"\r?\n", head)
    lines: list[str] = []
    for line in raw:
        if line[:1] in (" ", "\t") and lines:
            lines[-1] = lines[-1].rstrip() + " " + line.strip()
        else:
            lines.append(line)
    return lines


def parse_message(data: bytes, *, require_length: bool = False) -> Message:
    """Parse one SIP message. `require_length` is set by stream transports (RFC 3261 18.3)."""
    if len(data) > MAX_MESSAGE_BYTES:
        raise MessageTooLarge(f"message of {len(data)} bytes")
    head_bytes, body = _split_head(data.lstrip(b"\r\n"))
    if len(head_bytes) > MAX_HEADER_BYTES:
        raise MessageTooLarge(f"header block of {len(head_bytes)} bytes")
    try:
        head = head_bytes.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ParseError("header block is not UTF-8") from exc
    lines = _header_lines(head)
    if not lines or not lines[0]:
        raise ParseError("empty message")
    if len(lines) - 1 > MAX_HEADERS:
        raise MessageTooLarge(f"{len(lines) - 1} header fields")
    msg = _parse_start_line(lines[0])
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        name = name.strip()
        if not colon or not is_token(name):
            raise ParseError(f"bad header line {line[:40]!r}")
        try:
            msg.headers.add(name, value.strip())
        except ValueError as exc:  # bare CR or NUL inside a value
            raise ParseError(str(exc), field=name) from exc
    msg.body = _frame_body(msg.headers, body, require_length)
    return msg


def _parse_start_line(line: str) -> Message:
    if line.startswith("SIP/"):
        m = _STATUS_LINE_RE.fullmatch(line)
        if not m:
            raise ParseError(f"bad status line {line[:60]!r}")
        return SipResponse(status=int(m.group(1)), reason=m.group(2))
    m = _REQUEST_LINE_RE.fullmatch(line)
    if not m:
        raise ParseError(f"bad request line {line[:60]!r}")
    try:
        uri = SipUri.parse(m.group(2))
    except ValueError as exc:
        err = ParseError(f"bad Request-URI: {exc}", field="Request-URI")
        if ":" in m.group(2) and not m.group(2).lower().startswith(("sip:", "sips:")):
            err.status_hint = 416  # Unsupported URI Scheme
        raise err from exc
    return SipRequest(method=m.group(1), uri=uri)


def content_length(headers: Headers) -> int | None:
    values = [v for n, v in headers if canonical(n) == "content-length"]
    if not values:
        return None
    if len(set(v.strip() for v in values)) != 1 or not _CONTENT_LENGTH_RE.fullmatch(
        values[0].strip()
    ):
        raise ParseError("bad Content-Length", field="Content-Length")
    return int(values[0].strip())


def _frame_body(headers: Headers, body: bytes, require_length: bool) -> bytes:
    length = content_length(headers)
    if length is None:
        if require_length:
            raise ParseError("no Content-Length on a stream", field="Content-Length")
        length = len(body)
    if length > MAX_BODY_BYTES:
        raise MessageTooLarge(f"body of {length} bytes")
    if len(body) < length:
        raise ParseError(f"body truncated: {len(body)} of {length} bytes", field="Content-Length")
    return body[:length]  # RFC 3261 18.3: octets past Content-Length are discarded


def check_request(req: SipRequest) -> None:
    """Raise MissingHeader/ParseError unless the request has well-formed mandatory headers."""
    for name in MANDATORY_REQUEST_HEADERS:
        if req.headers.get(name) is None:
            raise MissingHeader(f"missing {name}", field=name)
    _ = req.top_via, req.from_, req.to, req.call_id
    cseq = req.cseq
    if cseq.method != req.method:
        raise ParseError("CSeq method differs from request method", field="CSeq")
    if not req.call_id:
        raise ParseError("empty Call-ID", field="Call-ID")


def check_response(resp: SipResponse) -> None:
    for name in ("via", "to", "from", "call-id", "cseq"):
        if resp.headers.get(name) is None:
            raise MissingHeader(f"missing {name}", field=name)
    _ = resp.top_via, resp.cseq, resp.from_, resp.to


class StreamFramer:
    """Cut a byte stream (TCP) into SIP messages by Content-Length (RFC 3261 18.3).

    `feed(data)` returns the complete messages it could cut. A framing error (no or bad
    Content-Length, oversized header block) leaves the stream unusable: the caller closes it.
    Bare CRLFs between messages (RFC 5626 keep-alives) are skipped.
    """

    def __init__(self) -> None:
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[bytes]:
        self._buf += data
        out: list[bytes] = []
        while True:
            while self._buf[:2] == b"\r\n":
                del self._buf[:2]
            end = self._buf.find(b"\r\n\r\n")
            if end < 0:
                if len(self._buf) > MAX_HEADER_BYTES:
                    raise MessageTooLarge("header block without end on stream")
                return out
            if end > MAX_HEADER_BYTES:
                raise MessageTooLarge("header block too large on stream")
            head = bytes(self._buf[:end])
            length = _stream_length(head)
            total = end + 4 + length
            if len(self._buf) < total:
                return out
            out.append(bytes(self._buf[:total]))
            del self._buf[:total]


def _stream_length(head: bytes) -> int:
    m = re.search(rb"(?im)^(?:content-length|l)[ \t]*:[ \t]*([0-9]{1,9})[ \t]*$", head)
    if not m:
        raise ParseError("no Content-Length on a stream", field="Content-Length")
    length = int(m.group(1))
    if length > MAX_BODY_BYTES:
        raise MessageTooLarge(f"body of {length} bytes")
    return length
