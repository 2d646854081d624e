"""Test-only SIP helpers: a lossy UDP relay and a tiny registrar that challenges with 407.

Both sit at the network seam (real sockets on 127.0.0.1); the UA under test cannot tell them
from a real peer. The relay drops chosen messages once, deterministically, where SIPp's own
`-lost` is random.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable
from dataclasses import dataclass, field

from telephony.sip.builder import make_response, new_tag
from telephony.sip.digest import make_challenge, verify
from telephony.sip.message import SipRequest, parse_message

Address = tuple[str, int]
Predicate = Callable[[bytes], bool]


def is_request(method: str) -> Predicate:
    return lambda data: data.startswith(method.encode() + b" ")


def is_response(status: int, method: str) -> Predicate:
    return lambda data: (
        data.startswith(f"SIP/2.0 {status} ".encode()) and f" {method}\r\n".encode() in data
    )


@dataclass
class LossyRelay:
    """UDP relay between a peer (`peer`) and everyone else; each drop rule fires once.

    Datagrams from `peer` go to the last non-peer sender (`client`); all others go to `peer`.
    """

    peer: Address
    drops: list[Predicate] = field(default_factory=list)
    dropped: list[bytes] = field(default_factory=list)
    forwarded: list[bytes] = field(default_factory=list)
    client: Address | None = None

    def __post_init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.setblocking(False)
        self.address: Address = self.sock.getsockname()

    def start(self) -> None:
        asyncio.get_running_loop().add_reader(self.sock.fileno(), self._read)

    def _read(self) -> None:
        while True:
            try:
                data, src = self.sock.recvfrom(65535)
            except BlockingIOError:
                return
            for rule in self.drops:
                if rule(data):
                    self.drops.remove(rule)
                    self.dropped.append(data)
                    break
            else:
                if src == self.peer:
                    if self.client is not None:
                        self.sock.sendto(data, self.client)
                else:
                    self.client = src
                    self.sock.sendto(data, self.peer)
                self.forwarded.append(data)

    def close(self) -> None:
        asyncio.get_running_loop().remove_reader(self.sock.fileno())
        self.sock.close()


class ProxyAuthRegistrar:
    """Accepts REGISTER only after a 407 Proxy-Authenticate challenge (SHA-256 and MD5, qop)."""

    def __init__(self, users: dict[str, str]) -> None:
        self.users = users
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.setblocking(False)
        self.address: Address = self.sock.getsockname()
        self.seen: list[SipRequest] = []
        self.bindings: dict[str, str] = {}

    def start(self) -> None:
        asyncio.get_running_loop().add_reader(self.sock.fileno(), self._read)

    def _read(self) -> None:
        while True:
            try:
                data, src = self.sock.recvfrom(65535)
            except BlockingIOError:
                return
            req = parse_message(data)
            if not isinstance(req, SipRequest):
                continue
            self.seen.append(req)
            self.sock.sendto(bytes(self._answer(req)), src)

    def _answer(self, req: SipRequest) -> object:
        user = req.from_.uri.user or ""
        creds = req.headers.get("Proxy-Authorization")
        if req.method == "REGISTER" and (
            creds is None
            or not verify(creds, method="REGISTER", password=self.users.get(user, "\x00"))
        ):
            resp = make_response(req, 407, to_tag=new_tag())
            resp.headers.add("Proxy-Authenticate", make_challenge("lab", algorithm="SHA-256"))
            resp.headers.add("Proxy-Authenticate", make_challenge("lab", algorithm="MD5"))
            return resp
        resp = make_response(req, 200, to_tag=new_tag())
        if req.method == "REGISTER":
            expires = req.headers.get("Expires") or "0"
            contact = req.headers.get("Contact") or ""
            if expires.strip() == "0":
                self.bindings.pop(user, None)
            else:
                self.bindings[user] = contact
                resp.headers.add("Contact", f"{contact};expires={expires}")
        return resp

    def close(self) -> None:
        asyncio.get_running_loop().remove_reader(self.sock.fileno())
        self.sock.close()
