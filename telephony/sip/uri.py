"""SIP URIs and name-addr values (RFC 3261 sections 19.1 and 20.10), parse and serialise.

`SipUri.parse` refuses anything outside the RFC character sets, so a URI that parsed can be
written into a message without fear of CR/LF or header injection.
"""

from __future__ import annotations

import functools
import ipaddress
import re
from dataclasses import dataclass, field, replace

from .params import (
    PARAM_VALUE_RE,
    Params,
    format_params,
    get_param,
    is_token,
    parse_params,
    quote,
    set_param,
    unquote,
)

# RFC 3261 25.1: user = 1*( unreserved / escaped / user-unreserved )
_USER_RE = re.compile(r"(?:[A-Za-z0-9\-_.!~*'()&=+$,;?/]|%[0-9A-Fa-f]{2})+")
_PASSWORD_RE = re.compile(r"(?:[A-Za-z0-9\-_.!~*'()&=+$,]|%[0-9A-Fa-f]{2})*")
_HOSTNAME_RE = re.compile(
    r"[A-Za-z0-9](?:[A-Za-z0-9\-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9\-]*[A-Za-z0-9])?)*\.?"
)
_HEADER_RE = re.compile(r"(?:[A-Za-z0-9\-_.!~*'()\[\]/?:+$]|%[0-9A-Fa-f]{2})*")


def valid_host(host: str) -> bool:
    """A hostname, an IPv4 address or a bracketed IPv6 reference."""
    if host.startswith("["):
        if not host.endswith("]"):
            return False
        try:
            ipaddress.IPv6Address(host[1:-1])
        except ValueError:
            return False
        return True
    return len(host) <= 253 and _HOSTNAME_RE.fullmatch(host) is not None


def valid_user(user: str) -> bool:
    return _USER_RE.fullmatch(user) is not None


def split_hostport(text: str) -> tuple[str, int | None]:
    """'host', 'host:port', '[v6]:port' -> (host, port); ValueError when malformed."""
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise ValueError("unterminated IPv6 reference")
        host, rest = text[: end + 1], text[end + 1 :]
        if rest and not rest.startswith(":"):
            raise ValueError(f"junk after host: {rest!r}")
        port_text = rest[1:] if rest else None
    else:
        host, colon, port_text_ = text.partition(":")
        port_text = port_text_ if colon else None
    port: int | None = None
    if port_text is not None:
        if not port_text.isdigit() or len(port_text) > 5 or int(port_text) > 65535:
            raise ValueError(f"bad port {port_text!r}")
        port = int(port_text)
    if not valid_host(host):
        raise ValueError(f"bad host {host!r}")
    return host, port


@dataclass(frozen=True, slots=True)
class SipUri:
    """sip:user:password@host:port;uri-params?headers"""

    host: str
    user: str | None = None
    port: int | None = None
    scheme: str = "sip"
    password: str | None = None
    params: Params = ()
    headers: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        if self.scheme not in ("sip", "sips"):
            raise ValueError(f"unsupported URI scheme {self.scheme!r}")
        if not valid_host(self.host):
            raise ValueError(f"bad host {self.host!r}")
        if self.user is not None and not valid_user(self.user):
            raise ValueError("bad user part")
        if self.password is not None and _PASSWORD_RE.fullmatch(self.password) is None:
            raise ValueError("bad password part")
        if self.port is not None and not 0 <= self.port <= 65535:
            raise ValueError(f"bad port {self.port}")
        for k, v in self.params:
            if not is_token(k) or (v is not None and PARAM_VALUE_RE.fullmatch(v) is None):
                raise ValueError(f"bad URI parameter {k!r}")
        for hk, hv in self.headers:
            if not _HEADER_RE.fullmatch(hk) or not _HEADER_RE.fullmatch(hv):
                raise ValueError("bad URI header")

    @classmethod
    @functools.lru_cache(maxsize=4096)
    def parse(cls, text: str) -> SipUri:
        scheme, colon, rest = text.strip().partition(":")
        if not colon:
            raise ValueError("URI without scheme")
        scheme = scheme.lower()
        if scheme not in ("sip", "sips"):
            raise ValueError(f"unsupported URI scheme {scheme!r}")
        rest, qmark, header_text = rest.partition("?")
        headers: list[tuple[str, str]] = []
        if qmark:
            for item in header_text.split("&"):
                hk, eq, hv = item.partition("=")
                if not eq or not hk:
                    raise ValueError("bad URI header")
                headers.append((hk, hv))
        user: str | None = None
        password: str | None = None
        if "@" in rest:
            userinfo, _, rest = rest.partition("@")
            user, pcolon, pw = userinfo.partition(":")
            password = pw if pcolon else None
            if not user:
                raise ValueError("empty user part")
        hostport, semi, param_text = rest.partition(";")
        host, port = split_hostport(hostport)
        params = parse_params(param_text) if semi else ()
        if any(v is not None and v.startswith('"') for _, v in params):
            raise ValueError("quoted value in URI parameter")
        return cls(
            host=host,
            user=user,
            port=port,
            scheme=scheme,
            password=password,
            params=params,
            headers=tuple(headers),
        )

    def __str__(self) -> str:
        out = [self.scheme, ":"]
        if self.user is not None:
            out.append(self.user)
            if self.password is not None:
                out.append(":" + self.password)
            out.append("@")
        out.append(self.host)
        if self.port is not None:
            out.append(f":{self.port}")
        out.append(format_params(self.params))
        if self.headers:
            out.append("?" + "&".join(f"{k}={v}" for k, v in self.headers))
        return "".join(out)

    def param(self, name: str) -> str | None:
        return get_param(self.params, name)

    def with_param(self, name: str, value: str | None) -> SipUri:
        return replace(self, params=set_param(self.params, name, value))

    @property
    def transport(self) -> str:
        """The transport the URI asks for (lower case), 'udp' when it does not say."""
        return (self.param("transport") or "udp").lower()

    @property
    def host_bare(self) -> str:
        """Host without IPv6 brackets, ready for socket calls."""
        return self.host[1:-1] if self.host.startswith("[") else self.host

    def hostport(self, default_port: int = 5060) -> tuple[str, int]:
        return self.host_bare, self.port if self.port is not None else default_port


_DISPLAY_TOKENS_RE = re.compile(r"[A-Za-z0-9\-.!%*_+`'~ \t]*")


@dataclass(frozen=True, slots=True)
class NameAddr:
    """A From/To/Contact/Route value: optional display name, URI, header parameters."""

    uri: SipUri
    display_name: str | None = None
    params: Params = field(default=())

    # memoised: the values are immutable, and a dialog repeats the same From, To, Via, CSeq in
    # every message of it (screening a 200 OK: 113 -> 40 us; issue 17); a bad value is not kept
    @classmethod
    @functools.lru_cache(maxsize=4096)
    def parse(cls, text: str) -> NameAddr:
        text = text.strip()
        display: str | None = None
        if text.startswith('"'):
            end = _quoted_end(text)
            display = unquote(text[: end + 1])
            text = text[end + 1 :].lstrip()
            if not text.startswith("<"):
                raise ValueError("display name without <uri>")
        elif "<" in text:
            lt = text.index("<")
            raw_display = text[:lt].strip()
            if _DISPLAY_TOKENS_RE.fullmatch(raw_display) is None:
                raise ValueError("bad display name")
            display = raw_display or None
            text = text[lt:]
        if text.startswith("<"):
            gt = text.find(">")
            if gt < 0:
                raise ValueError("unterminated <uri>")
            uri = SipUri.parse(text[1:gt])
            rest = text[gt + 1 :].strip()
        else:
            # addr-spec form: parameters after the URI belong to the header (RFC 3261 20)
            uri_text, semi, param_rest = text.partition(";")
            if "?" in uri_text or "," in uri_text:
                raise ValueError("addr-spec with reserved characters must use <>")
            uri = SipUri.parse(uri_text)
            rest = semi + param_rest
        if rest and not rest.startswith(";"):
            raise ValueError(f"junk after URI: {rest[:20]!r}")
        return cls(uri=uri, display_name=display, params=parse_params(rest))

    def __str__(self) -> str:
        prefix = f"{quote(self.display_name)} " if self.display_name else ""
        return f"{prefix}<{self.uri}>{format_params(self.params)}"

    def param(self, name: str) -> str | None:
        return get_param(self.params, name)

    @property
    def tag(self) -> str | None:
        return self.param("tag")

    def with_param(self, name: str, value: str | None) -> NameAddr:
        return replace(self, params=set_param(self.params, name, value))


def _quoted_end(text: str) -> int:
    """Index of the closing quote of the quoted-string that starts text[0]."""
    i = 1
    while i < len(text):
        if text[i] == "\\":
            i += 2
            continue
        if text[i] == '"':
            return i
        i += 1
    raise ValueError("unterminated quoted display name")
