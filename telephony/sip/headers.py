"""Header collection and the structured headers the stack reads: Via and CSeq.

Header names compare case-insensitively and compact forms (RFC 3261 7.3.3, RFC 3515, RFC 4028...)
are equivalent to their long names. Names are stored as written so that a parsed message
serialises back to the same bytes.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator
from dataclasses import dataclass, replace

from .params import (
    Params,
    format_params,
    get_param,
    is_token,
    parse_params,
    set_param,
    split_outside_quotes,
)
from .uri import split_hostport

COMPACT_FORMS: dict[str, str] = {
    "a": "accept-contact",
    "b": "referred-by",
    "c": "content-type",
    "d": "request-disposition",
    "e": "content-encoding",
    "f": "from",
    "i": "call-id",
    "j": "reject-contact",
    "k": "supported",
    "l": "content-length",
    "m": "contact",
    "o": "event",
    "r": "refer-to",
    "s": "subject",
    "t": "to",
    "u": "allow-events",
    "v": "via",
    "x": "session-expires",
    "y": "identity",
}

# Headers whose value is a comma-separated list (RFC 3261 7.3.1); others (auth, dates) are not.
LIST_HEADERS = frozenset(
    {
        "via",
        "route",
        "record-route",
        "contact",
        "allow",
        "supported",
        "require",
        "proxy-require",
        "unsupported",
        "accept",
        "accept-encoding",
        "accept-language",
        "content-encoding",
        "allow-events",
        "path",
        "service-route",
        "in-reply-to",
    }
)

_BAD_VALUE_RE = re.compile(r"[\x00\r\n]")


@functools.lru_cache(maxsize=1024)
def canonical(name: str) -> str:
    """Lower-case long form of a header name: 'v' -> 'via', 'Call-ID' -> 'call-id'."""
    lname = name.lower()
    return COMPACT_FORMS.get(lname, lname)


class Headers:
    """An ordered multi-map of header fields with case-insensitive, compact-aware names."""

    __slots__ = ("_items",)

    def __init__(self, items: list[tuple[str, str]] | None = None) -> None:
        self._items: list[tuple[str, str]] = []
        for name, value in items or []:
            self.add(name, value)

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(list(self._items))

    def __len__(self) -> int:
        return len(self._items)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Headers):
            return NotImplemented
        return [(canonical(n), v) for n, v in self._items] == [
            (canonical(n), v) for n, v in other._items
        ]

    def __repr__(self) -> str:
        return f"Headers({self._items!r})"

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.get(name) is not None

    def copy(self) -> Headers:
        h = Headers()
        h._items = list(self._items)
        return h

    @staticmethod
    def _check(name: str, value: str) -> None:
        if not is_token(name):
            raise ValueError(f"bad header name {name!r}")
        if _BAD_VALUE_RE.search(value):
            raise ValueError(f"CR, LF or NUL in header {name!r}")

    def get(self, name: str) -> str | None:
        """The first field's value as written (not split on commas)."""
        cname = canonical(name)
        for n, v in self._items:
            if canonical(n) == cname:
                return v
        return None

    def get_all(self, name: str) -> list[str]:
        """Every value: repeated fields in order, list headers split on top-level commas."""
        cname = canonical(name)
        out: list[str] = []
        for n, v in self._items:
            if canonical(n) != cname:
                continue
            if cname in LIST_HEADERS:
                out.extend(p.strip() for p in split_outside_quotes(v, ",") if p.strip())
            else:
                out.append(v)
        return out

    def add(self, name: str, value: str) -> None:
        self._check(name, value)
        self._items.append((name, value))

    def prepend(self, name: str, value: str) -> None:
        self._check(name, value)
        self._items.insert(0, (name, value))

    def remove(self, name: str) -> None:
        cname = canonical(name)
        self._items = [(n, v) for n, v in self._items if canonical(n) != cname]

    def set(self, name: str, value: str) -> None:
        """Replace every field called `name` by one, at the position of the first."""
        self._check(name, value)
        cname = canonical(name)
        out: list[tuple[str, str]] = []
        placed = False
        for n, v in self._items:
            if canonical(n) == cname:
                if not placed:
                    out.append((n, value))
                    placed = True
            else:
                out.append((n, v))
        if not placed:
            out.append((name, value))
        self._items = out


@dataclass(frozen=True, slots=True)
class Via:
    """One Via hop: SIP/2.0/<transport> host[:port];params (RFC 3261 20.42)."""

    transport: str
    host: str
    port: int | None = None
    params: Params = ()

    @classmethod
    @functools.lru_cache(maxsize=4096)  # memoised, as NameAddr.parse (immutable values)
    def parse(cls, text: str) -> Via:
        m = re.match(
            r"\s*SIP\s*/\s*2\.0\s*/\s*([A-Za-z0-9\-.!%*_+`'~]+)\s+([^;\s]+)\s*(.*)$", text, re.S
        )
        if not m:
            raise ValueError(f"bad Via {text[:40]!r}")
        host, port = split_hostport(m.group(2))
        rest = m.group(3).strip()
        if rest and not rest.startswith(";"):
            raise ValueError("junk in Via")
        return cls(m.group(1).upper(), host, port, parse_params(rest))

    @classmethod
    def parse_all(cls, values: list[str]) -> list[Via]:
        return [cls.parse(v) for v in values]

    def __str__(self) -> str:
        port = f":{self.port}" if self.port is not None else ""
        return f"SIP/2.0/{self.transport} {self.host}{port}{format_params(self.params)}"

    @property
    def branch(self) -> str | None:
        return get_param(self.params, "branch")

    def param(self, name: str) -> str | None:
        return get_param(self.params, name)

    def with_param(self, name: str, value: str | None) -> Via:
        return replace(self, params=set_param(self.params, name, value))

    @property
    def sent_by(self) -> tuple[str, int]:
        default = 5061 if self.transport == "TLS" else 5060
        return self.host.lower(), self.port if self.port is not None else default


@dataclass(frozen=True, slots=True)
class CSeq:
    """CSeq: <number> <METHOD> (RFC 3261 20.16)."""

    number: int
    method: str

    @classmethod
    @functools.lru_cache(maxsize=1024)  # memoised, as NameAddr.parse (immutable values)
    def parse(cls, text: str) -> CSeq:
        parts = text.split()
        if (
            len(parts) != 2
            or not parts[0].isdigit()
            or len(parts[0]) > 10
            or not is_token(parts[1])
        ):
            raise ValueError(f"bad CSeq {text[:40]!r}")
        number = int(parts[0])
        if number >= 2**31:
            raise ValueError("CSeq number out of range")
        return cls(number, parts[1])

    def __str__(self) -> str:
        return f"{self.number} {self.method}"
