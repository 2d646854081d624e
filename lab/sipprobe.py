"""Raw SIP probes for lab tests: send one request over UDP and read the final response.

Deliberately tiny and independent of telephony/sip (the code under test): it builds the
request text by hand, answers one digest challenge (RFC 2617 / RFC 8760 MD5, qop=auth)
when credentials are given, and ACKs non-2xx final responses to INVITE on the same
branch (RFC 3261 section 17.1.1.3). It is meant for status-line checks (407 challenge,
403 relay denied, 404, OPTIONS keepalive), not for establishing calls.
"""

from __future__ import annotations

import hashlib
import re
import socket
import time
import uuid
from dataclasses import dataclass, field

HOST = "127.0.0.1"


@dataclass
class SipResponse:
    """A parsed response: status code, reason, headers (lower-case names, first value)."""

    status: int
    reason: str
    headers: dict[str, str] = field(default_factory=dict)
    raw: str = ""

    @property
    def status_line(self) -> str:
        return f"SIP/2.0 {self.status} {self.reason}"


def parse_response(data: bytes) -> SipResponse:
    text = data.decode(errors="replace")
    head = text.split("\r\n\r\n", 1)[0]
    lines = head.split("\r\n")
    m = re.match(r"SIP/2\.0 (\d{3}) ?(.*)", lines[0])
    if m is None:
        raise ValueError(f"not a SIP response: {lines[0]!r}")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers.setdefault(name.strip().lower(), value.strip())
    return SipResponse(int(m.group(1)), m.group(2), headers, text)


def _md5(s: str) -> str:
    return hashlib.md5(s.encode()).hexdigest()  # noqa: S324 - SIP digest (RFC 2617)


def digest_header(challenge: str, method: str, uri: str, user: str, password: str) -> str:
    """The credentials answering a ``WWW-/Proxy-Authenticate: Digest ...`` challenge."""
    params = dict(re.findall(r'(\w+)="?([^",]*)"?', challenge))
    realm, nonce = params["realm"], params["nonce"]
    ha1 = _md5(f"{user}:{realm}:{password}")
    ha2 = _md5(f"{method}:{uri}")
    parts = [f'username="{user}"', f'realm="{realm}"', f'nonce="{nonce}"', f'uri="{uri}"']
    if "auth" in params.get("qop", "").split(","):
        cnonce, nc = uuid.uuid4().hex[:8], "00000001"
        resp = _md5(f"{ha1}:{nonce}:{nc}:{cnonce}:auth:{ha2}")
        parts += ["qop=auth", f"nc={nc}", f'cnonce="{cnonce}"']
    else:
        resp = _md5(f"{ha1}:{nonce}:{ha2}")
    parts.append(f'response="{resp}"')
    parts.append("algorithm=MD5")
    if "opaque" in params:
        parts.append(f'opaque="{params["opaque"]}"')
    return "Digest " + ", ".join(parts)


class SipProbe:
    """A UDP socket on 127.0.0.1 that sends requests to one proxy and reads replies."""

    def __init__(self, host: str, port: int, timeout: float = 2.0) -> None:
        self.remote = (host, port)
        self.timeout = timeout
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((HOST, 0))
        self.local_port: int = self.sock.getsockname()[1]

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> SipProbe:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _build(
        self,
        method: str,
        ruri: str,
        from_user: str,
        to_uri: str,
        call_id: str,
        cseq: int,
        branch: str,
        extra: list[str],
        tag: str,
        to_tag: str = "",
    ) -> bytes:
        body = ""
        if method == "INVITE":
            body = (
                f"v=0\r\no=probe 1 1 IN IP4 {HOST}\r\ns=-\r\nc=IN IP4 {HOST}\r\nt=0 0\r\n"
                f"m=audio 9 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
            )
        lines = [
            f"{method} {ruri} SIP/2.0",
            f"Via: SIP/2.0/UDP {HOST}:{self.local_port};branch={branch};rport",
            f"From: <sip:{from_user}@{HOST}>;tag={tag}",
            f"To: <{to_uri}>" + (f";tag={to_tag}" if to_tag else ""),
            f"Call-ID: {call_id}",
            f"CSeq: {cseq} {method}",
            f"Contact: <sip:{from_user}@{HOST}:{self.local_port}>",
            "Max-Forwards: 70",
            *extra,
        ]
        if body:
            lines.append("Content-Type: application/sdp")
        lines.append(f"Content-Length: {len(body)}")
        return ("\r\n".join(lines) + "\r\n\r\n" + body).encode()

    def _final(self, deadline: float) -> SipResponse:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no final response from {self.remote}")
            self.sock.settimeout(left)
            data = self.sock.recv(65536)
            resp = parse_response(data)
            if resp.status >= 200:
                return resp

    def request(
        self,
        method: str,
        ruri: str,
        from_user: str = "probe",
        to_uri: str | None = None,
        auth: tuple[str, str] | None = None,
        extra_headers: list[str] | None = None,
        reuse_branch: bool = False,
    ) -> SipResponse:
        """Send ``method`` to ``ruri``; answer one 401/407 if ``auth``; return the final reply.

        ``reuse_branch`` re-sends the authenticated request with the challenged request's
        Via branch, as pyVoIP 1.6.8 does (not RFC 3261 conformant).
        """
        call_id, tag = uuid.uuid4().hex, uuid.uuid4().hex[:8]
        to_uri = to_uri or ruri
        extra = list(extra_headers or [])
        cseq = 1
        branch = "z9hG4bK" + uuid.uuid4().hex[:16]
        resp = self._send_once(method, ruri, from_user, to_uri, call_id, cseq, extra, tag, branch)
        if auth is not None and resp.status in (401, 407):
            name = "www-authenticate" if resp.status == 401 else "proxy-authenticate"
            hdr = "Authorization" if resp.status == 401 else "Proxy-Authorization"
            cred = digest_header(resp.headers[name], method, ruri, auth[0], auth[1])
            cseq += 1
            if not reuse_branch:
                branch = "z9hG4bK" + uuid.uuid4().hex[:16]
            extra = [*extra, f"{hdr}: {cred}"]
            resp = self._send_once(
                method, ruri, from_user, to_uri, call_id, cseq, extra, tag, branch
            )
        return resp

    def _send_once(
        self,
        method: str,
        ruri: str,
        from_user: str,
        to_uri: str,
        call_id: str,
        cseq: int,
        extra: list[str],
        tag: str,
        branch: str,
    ) -> SipResponse:
        msg = self._build(method, ruri, from_user, to_uri, call_id, cseq, branch, extra, tag)
        self.sock.sendto(msg, self.remote)
        resp = self._final(time.monotonic() + self.timeout)
        if method == "INVITE" and resp.status >= 300:
            to_tag = re.search(r";tag=([^;>\s]+)", resp.headers.get("to", ""))
            ack = self._build(
                "ACK",
                ruri,
                from_user,
                to_uri,
                call_id,
                cseq,
                branch,
                [],
                tag,
                to_tag.group(1) if to_tag else "",
            )
            self.sock.sendto(ack, self.remote)
        return resp


def sip_options(host: str, port: int, timeout: float = 1.0) -> str | None:
    """Send one OPTIONS to host:port; return the reply's status line, or None."""
    try:
        with SipProbe(host, port, timeout) as p:
            return p.request("OPTIONS", f"sip:{host}:{port}").status_line
    except (OSError, TimeoutError, ValueError):
        return None
