"""The UA's answer to the transaction layer's `Gate`: who gets a transaction (issue 13).

* Out of dialog: INVITE, CANCEL, BYE, INFO... only from trusted peers (`TrustPolicy`, failing
  closed); others get one stateless 403. OPTIONS from anyone gets one stateless 200.
* From the trunk, when `trunk_auth` is configured: an INVITE must carry a digest answer to our
  stateless challenge (401, nonce = time + HMAC, valid `NONCE_TTL` seconds), else 401.
* In a dialog (To tag present): only from the dialog's peer (the address its INVITE or 2xx came
  from, its remote target, its next hop) or a trusted peer (RFC 3261 12.2.2 says nothing about
  sources; a 110 call's media must not be movable by a stranger, finding 4); others get 403.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from .admission import ACCEPT, Admission, Drop, Refuse
from .builder import make_response, new_tag
from .digest import parse_auth_params, verify
from .message import SipRequest, SipResponse
from .params import quote
from .transport import Address
from .trust import TrustPolicy

if TYPE_CHECKING:
    from .context import Call

logger = logging.getLogger(__name__)

NONCE_TTL = 300.0


class TrunkAuthenticator:
    """Stateless digest challenges for INVITEs from the trunk (RFC 3261 22.4, RFC 8760)."""

    def __init__(self, user: str, password: str, realm: str, clock: Callable[[], float]) -> None:
        self._user = user
        self._password = password
        self.realm = realm
        self._clock = clock
        self._secret = secrets.token_bytes(32)

    def _sign(self, stamp: str) -> str:
        return hmac.new(self._secret, stamp.encode(), hashlib.sha256).hexdigest()[:32]

    def nonce(self) -> str:
        stamp = f"{self._clock():.3f}"
        return f"{stamp}:{self._sign(stamp)}"

    def _fresh(self, nonce: str) -> bool:
        stamp, _, sig = nonce.partition(":")
        try:
            age = self._clock() - float(stamp)
        except ValueError:
            return False
        return hmac.compare_digest(sig, self._sign(stamp)) and 0 <= age <= NONCE_TTL

    def accepts(self, req: SipRequest) -> bool:
        value = req.headers.get("Authorization")
        if value is None:
            return False
        try:
            params = parse_auth_params(value.strip().partition(" ")[2])
        except ValueError:
            return False
        return (
            params.get("username") == self._user
            and params.get("realm") == self.realm
            and self._fresh(params.get("nonce", ""))
            and verify(value, method=req.method, password=self._password)
        )

    def challenge(self, req: SipRequest) -> SipResponse:
        resp = make_response(req, 401, to_tag=new_tag())
        nonce = self.nonce()
        for algorithm in ("SHA-256", "MD5"):  # RFC 8760 3: the preferred one first
            resp.headers.add(
                "WWW-Authenticate",
                f"Digest realm={quote(self.realm)}, nonce={quote(nonce)}, "
                f'algorithm={algorithm}, qop="auth"',
            )
        return resp


class Gatekeeper:
    """Implements `admission.Gate` over the trust policy and the table of live calls."""

    def __init__(
        self,
        trust: TrustPolicy,
        calls: Mapping[str, Call],
        options_response: Callable[[SipRequest], SipResponse],
        trunk_auth: TrunkAuthenticator | None = None,
    ) -> None:
        self._trust = trust
        self._calls = calls
        self._options = options_response
        self._trunk_auth = trunk_auth

    def trusted_source(self, ip: str) -> bool:
        return self._trust.trusted_ip(ip)

    def admit(self, req: SipRequest, source: Address) -> Admission:
        ip = source[0]
        if req.to.tag is not None:
            return self._in_dialog(req, ip)
        if not self._trust.trusted_ip(ip):
            if req.method == "OPTIONS":
                return Refuse(self._options(req), "options_untrusted")
            if req.method == "ACK":
                return Drop("untrusted")
            return Refuse(make_response(req, 403, to_tag=new_tag()), "untrusted")
        auth = self._trunk_auth
        if (
            auth is not None
            and req.method == "INVITE"
            and self._trust.is_trunk(ip)
            and not auth.accepts(req)
        ):
            return Refuse(auth.challenge(req), "trunk_auth")
        return ACCEPT

    def _in_dialog(self, req: SipRequest, ip: str) -> Admission:
        if self._trust.trusted_ip(ip):
            return ACCEPT
        call = self._calls.get(req.call_id)
        if call is not None and ip in dialog_peers(call):
            return ACCEPT
        if req.method == "ACK":
            return Drop("not_dialog_peer")
        return Refuse(make_response(req, 403), "not_dialog_peer")


def dialog_peers(call: Call) -> set[str]:
    """The hosts a call's in-dialog requests may come from."""
    peers = {call.peer_host}
    dialog = call.leg.dialog
    if dialog is not None:
        peers.add(dialog.remote_target.host.strip("[]"))
        peers.add(dialog.next_hop().host.strip("[]"))
    return peers
