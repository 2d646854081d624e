"""Dialogs (RFC 3261 section 12): identity, route set, remote target, CSeq bookkeeping.

A `Dialog` is built from the INVITE and its 2xx (UAC side) or from the INVITE we answer (UAS
side). It builds in-dialog requests (without Via: the transport layer adds the hop) and checks
the ones it receives. Pure data; no I/O.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from .errors import ParseError
from .headers import Headers
from .message import SipRequest, SipResponse
from .uri import NameAddr, SipUri

DialogId = tuple[str, str, str]  # (Call-ID, local tag, remote tag)


@dataclass
class Dialog:
    call_id: str
    local_tag: str
    remote_tag: str
    local_uri: NameAddr  # our From in requests we send (without tag)
    remote_uri: NameAddr  # their To in requests we send (without tag)
    remote_target: SipUri
    route_set: list[NameAddr] = field(default_factory=list)
    local_seq: int = field(default_factory=lambda: random.randint(1, 2**20))
    remote_seq: int | None = None
    local_contact: str = ""
    # what a later process needs to offer media again in this dialog (RFC 3264 8: the same o=
    # session id, a higher version) and how it reached the peer; set by the UA, kept in the state
    sdp_session_id: int | None = None
    transport: str = "udp"

    @property
    def id(self) -> DialogId:
        return (self.call_id, self.local_tag, self.remote_tag)

    @classmethod
    def from_uac(cls, invite: SipRequest, resp: SipResponse, local_contact: str) -> Dialog:
        """RFC 3261 12.1.2: route set = Record-Route of the response, reversed."""
        contacts = resp.name_addrs("Contact")
        if not contacts:
            raise ParseError("2xx to INVITE without Contact", field="Contact")
        to = resp.to
        if to.tag is None:
            raise ParseError("2xx to INVITE without To tag", field="To")
        frm = invite.from_
        return cls(
            call_id=invite.call_id,
            local_tag=frm.tag or "",
            remote_tag=to.tag,
            local_uri=replace(frm, params=tuple(p for p in frm.params if p[0].lower() != "tag")),
            remote_uri=replace(to, params=tuple(p for p in to.params if p[0].lower() != "tag")),
            remote_target=contacts[0].uri,
            route_set=list(reversed(resp.name_addrs("Record-Route"))),
            local_seq=invite.cseq.number,
            local_contact=local_contact,
        )

    @classmethod
    def from_uas(cls, invite: SipRequest, local_tag: str, local_contact: str) -> Dialog:
        """RFC 3261 12.1.1: route set = Record-Route of the request, in order."""
        contacts = invite.name_addrs("Contact")
        if not contacts:
            raise ParseError("INVITE without Contact", field="Contact")
        frm, to = invite.from_, invite.to
        return cls(
            call_id=invite.call_id,
            local_tag=local_tag,
            remote_tag=frm.tag or "",
            local_uri=replace(to, params=tuple(p for p in to.params if p[0].lower() != "tag")),
            remote_uri=replace(frm, params=tuple(p for p in frm.params if p[0].lower() != "tag")),
            remote_target=contacts[0].uri,
            route_set=invite.name_addrs("Record-Route"),
            remote_seq=invite.cseq.number,
            local_contact=local_contact,
        )

    # -- state that outlives the process (RFC 3261 12: what identifies and addresses a dialog) --
    def to_state(self) -> dict[str, Any]:
        """The dialog as JSON-ready values, enough to send a request in it from another process."""
        return {
            "call_id": self.call_id,
            "local_tag": self.local_tag,
            "remote_tag": self.remote_tag,
            "local_uri": str(self.local_uri),
            "remote_uri": str(self.remote_uri),
            "remote_target": str(self.remote_target),
            "route_set": [str(r) for r in self.route_set],
            "local_seq": self.local_seq,
            "local_contact": self.local_contact,
            "sdp_session_id": self.sdp_session_id,
            "transport": self.transport,
        }

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> Dialog:
        """Rebuild a dialog from `to_state` (ParseError when a field is missing or malformed)."""
        try:
            return cls(
                call_id=str(state["call_id"]),
                local_tag=str(state["local_tag"]),
                remote_tag=str(state["remote_tag"]),
                local_uri=NameAddr.parse(str(state["local_uri"])),
                remote_uri=NameAddr.parse(str(state["remote_uri"])),
                remote_target=SipUri.parse(str(state["remote_target"])),
                route_set=[NameAddr.parse(str(r)) for r in state.get("route_set", [])],
                local_seq=int(state["local_seq"]),
                local_contact=str(state.get("local_contact", "")),
                sdp_session_id=(
                    int(state["sdp_session_id"])
                    if state.get("sdp_session_id") is not None
                    else None
                ),
                transport=str(state.get("transport") or "udp"),
            )
        except (KeyError, TypeError, ValueError) as exc:
            if isinstance(exc, ParseError):
                raise
            raise ParseError(f"stored dialog state is not usable: {exc!r}", field="dialog") from exc

    def next_hop(self) -> SipUri:
        """Where an in-dialog request goes first: the top route, else the remote target."""
        return self.route_set[0].uri if self.route_set else self.remote_target

    def create_request(self, method: str, *, cseq: int | None = None) -> SipRequest:
        """An in-dialog request (RFC 3261 12.2.1.1) without Via; ACK/CANCEL reuse `cseq`."""
        if cseq is None:
            self.local_seq += 1
            cseq = self.local_seq
        h = Headers()
        uri = self.remote_target
        routes = list(self.route_set)
        if routes and routes[0].uri.param("lr") is None:
            # strict router: its URI becomes the Request-URI, the remote target the last Route
            uri = replace(routes[0].uri, params=(), headers=())
            routes = [*routes[1:], NameAddr(self.remote_target)]
        for r in routes:
            h.add("Route", str(r))
        h.add("Max-Forwards", "70")
        h.add("From", str(self.local_uri.with_param("tag", self.local_tag)))
        h.add("To", str(self.remote_uri.with_param("tag", self.remote_tag)))
        h.add("Call-ID", self.call_id)
        h.add("CSeq", f"{cseq} {method}")
        if self.local_contact and method in ("INVITE", "UPDATE", "SUBSCRIBE", "NOTIFY", "REFER"):
            h.add("Contact", self.local_contact)
        return SipRequest(method=method, uri=uri, headers=h)

    def accept_request(self, req: SipRequest) -> bool:
        """RFC 3261 12.2.2: False for an out-of-order request (answer 500); updates state."""
        cseq = req.cseq.number
        if req.method not in ("ACK", "CANCEL"):
            if self.remote_seq is not None and cseq <= self.remote_seq:
                return False
            self.remote_seq = cseq
        if req.method == "INVITE":  # target refresh (12.2.2)
            contacts = req.name_addrs("Contact")
            if contacts:
                self.remote_target = contacts[0].uri
        return True

    def update_target(self, resp: SipResponse) -> None:
        """A 2xx to our re-INVITE refreshes the remote target (RFC 3261 12.2.1.2)."""
        contacts = resp.name_addrs("Contact")
        if contacts:
            self.remote_target = contacts[0].uri


def _optional_int(value: Any) -> int | None:
    return None if value is None else int(value)
