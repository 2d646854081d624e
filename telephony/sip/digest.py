"""HTTP digest authentication for SIP (RFC 3261 22, RFC 2617, RFC 8760: MD5 and SHA-256).

`Challenge.parse` reads a WWW-Authenticate / Proxy-Authenticate value; `DigestClient` answers
challenges and counts nonce use (nc) per nonce; `verify` is the server side (used by tests and
by anything that wants to check credentials).
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass, field

from .errors import AuthError
from .params import quote, split_outside_quotes, unquote

_HASHES = {
    "MD5": hashlib.md5,
    "MD5-SESS": hashlib.md5,
    "SHA-256": hashlib.sha256,
    "SHA-256-SESS": hashlib.sha256,
}
# RFC 8760 section 2.4: prefer the strongest algorithm a server offers
_PREFERENCE = ["SHA-256", "SHA-256-SESS", "MD5", "MD5-SESS"]


def _h(algorithm: str, data: str) -> str:
    return _HASHES[algorithm](data.encode("utf-8")).hexdigest()


def parse_auth_params(text: str) -> dict[str, str]:
    """'k1="v1", k2=v2' -> {'k1': 'v1', 'k2': 'v2'} (names lower-cased, values unquoted)."""
    out: dict[str, str] = {}
    for item in split_outside_quotes(text, ","):
        item = item.strip()
        if not item:
            continue
        name, eq, value = item.partition("=")
        if not eq:
            raise ValueError(f"bad auth parameter {item[:30]!r}")
        out[name.strip().lower()] = unquote(value.strip())
    return out


@dataclass(frozen=True, slots=True)
class Challenge:
    """One digest challenge from a 401 (WWW-Authenticate) or 407 (Proxy-Authenticate)."""

    realm: str
    nonce: str
    algorithm: str = "MD5"
    qop: tuple[str, ...] = ()
    opaque: str | None = None
    stale: bool = False

    @classmethod
    def parse(cls, value: str) -> Challenge:
        scheme, _, rest = value.strip().partition(" ")
        if scheme.lower() != "digest":
            raise AuthError(f"unsupported auth scheme {scheme!r}")
        try:
            params = parse_auth_params(rest)
        except ValueError as exc:
            raise AuthError(str(exc)) from exc
        if "realm" not in params or "nonce" not in params:
            raise AuthError("challenge without realm or nonce")
        algorithm = params.get("algorithm", "MD5").upper()
        if algorithm not in _HASHES:
            raise AuthError(f"unsupported digest algorithm {algorithm!r}")
        qop = tuple(q.strip().lower() for q in params.get("qop", "").split(",") if q.strip())
        return cls(
            realm=params["realm"],
            nonce=params["nonce"],
            algorithm=algorithm,
            qop=qop,
            opaque=params.get("opaque"),
            stale=params.get("stale", "").lower() == "true",
        )


def choose(challenges: list[Challenge]) -> Challenge:
    """Pick the challenge to answer among several for the same realm (RFC 8760 2.4)."""
    usable = [c for c in challenges if not c.qop or "auth" in c.qop]
    if not usable:
        raise AuthError("no challenge with qop=auth or without qop")
    return min(usable, key=lambda c: _PREFERENCE.index(c.algorithm))


def compute_response(
    *,
    algorithm: str,
    username: str,
    realm: str,
    password: str,
    method: str,
    uri: str,
    nonce: str,
    qop: str | None,
    nc: str | None,
    cnonce: str | None,
) -> str:
    """The request-digest of RFC 2617 3.2.2.1 with the hash of RFC 8760."""
    ha1 = _h(algorithm, f"{username}:{realm}:{password}")
    if algorithm.endswith("-SESS"):
        ha1 = _h(algorithm, f"{ha1}:{nonce}:{cnonce}")
    ha2 = _h(algorithm, f"{method}:{uri}")
    if qop:
        return _h(algorithm, f"{ha1}:{nonce}:{nc}:{cnonce}:{qop}:{ha2}")
    return _h(algorithm, f"{ha1}:{nonce}:{ha2}")


@dataclass
class DigestClient:
    """Answers challenges for one set of credentials; counts nc per nonce (RFC 2617 3.2.2)."""

    username: str
    password: str = field(repr=False)
    _nonce_counts: dict[str, int] = field(default_factory=dict, repr=False)

    def authorization(self, challenge: Challenge, method: str, uri: str) -> str:
        """The Authorization / Proxy-Authorization header value answering `challenge`."""
        qop = "auth" if "auth" in challenge.qop else None
        if challenge.qop and qop is None:
            raise AuthError("server requires a qop other than auth")
        nc = cnonce = None
        if qop:
            count = self._nonce_counts.get(challenge.nonce, 0) + 1
            self._nonce_counts[challenge.nonce] = count
            nc = f"{count:08x}"
            cnonce = secrets.token_hex(8)
        elif challenge.algorithm.endswith("-SESS"):
            cnonce = secrets.token_hex(8)
        response = compute_response(
            algorithm=challenge.algorithm,
            username=self.username,
            realm=challenge.realm,
            password=self.password,
            method=method,
            uri=uri,
            nonce=challenge.nonce,
            qop=qop,
            nc=nc,
            cnonce=cnonce,
        )
        parts = [
            f"username={quote(self.username)}",
            f"realm={quote(challenge.realm)}",
            f"nonce={quote(challenge.nonce)}",
            f"uri={quote(uri)}",
            f"response={quote(response)}",
            f"algorithm={challenge.algorithm}",
        ]
        if cnonce:
            parts.append(f"cnonce={quote(cnonce)}")
        if challenge.opaque is not None:
            parts.append(f"opaque={quote(challenge.opaque)}")
        if qop:
            parts.append(f"qop={qop}")
            parts.append(f"nc={nc}")
        return "Digest " + ", ".join(parts)


def make_challenge(
    realm: str, *, algorithm: str = "MD5", qop: bool = True, stale: bool = False
) -> str:
    """A WWW-Authenticate value with a fresh nonce (for tests and server roles)."""
    nonce = secrets.token_hex(16)
    parts = [f"realm={quote(realm)}", f"nonce={quote(nonce)}", f"algorithm={algorithm}"]
    if qop:
        parts.append('qop="auth"')
    if stale:
        parts.append("stale=true")
    return "Digest " + ", ".join(parts)


def verify(authorization: str, *, method: str, password: str) -> bool:
    """Check an Authorization value against a password (server side; nonce not checked)."""
    scheme, _, rest = authorization.strip().partition(" ")
    if scheme.lower() != "digest":
        return False
    try:
        p = parse_auth_params(rest)
    except ValueError:
        return False
    algorithm = p.get("algorithm", "MD5").upper()
    if (
        algorithm not in _HASHES
        or not {"username", "realm", "nonce", "uri", "response"} <= p.keys()
    ):
        return False
    expected = compute_response(
        algorithm=algorithm,
        username=p["username"],
        realm=p["realm"],
        password=password,
        method=method,
        uri=p["uri"],
        nonce=p["nonce"],
        qop=p.get("qop"),
        nc=p.get("nc"),
        cnonce=p.get("cnonce"),
    )
    return secrets.compare_digest(expected, p["response"])
