"""Low-level grammar helpers shared by URIs and headers (RFC 3261 section 25.1).

Splitting on `,` and `;` must skip quoted strings and `<...>` URIs; this is the one place that
knows how.
"""

from __future__ import annotations

import re

TOKEN_RE = re.compile(r"[A-Za-z0-9\-.!%*_+`'~]+")
# Characters a parameter value may carry unquoted: token plus RFC 3261 param-unreserved and `@`/`:`
PARAM_VALUE_RE = re.compile(r"[A-Za-z0-9\-.!%*_+`'~\[\]/:&$@=?]+")

Params = tuple[tuple[str, str | None], ...]


def is_token(text: str) -> bool:
    return TOKEN_RE.fullmatch(text) is not None


def split_outside_quotes(text: str, sep: str) -> list[str]:
    """Split `text` on `sep`, ignoring separators inside "quoted strings" and <angle brackets>."""
    if '"' not in text:  # the common cases, without a character loop
        if sep not in text:
            return [text]
        if "<" not in text:
            return text.split(sep)
    parts: list[str] = []
    start = 0
    in_quote = False
    in_angle = False
    i = 0
    n = len(text)
    while i < n:
        ch = text[i]
        if in_quote:
            if ch == "\\":
                i += 1
            elif ch == '"':
                in_quote = False
        elif ch == '"':
            in_quote = True
        elif ch == "<":
            in_angle = True
        elif ch == ">":
            in_angle = False
        elif ch == sep and not in_angle:
            parts.append(text[start:i])
            start = i + 1
        i += 1
    if in_quote:
        raise ValueError("unterminated quoted string")
    parts.append(text[start:])
    return parts


def parse_params(text: str) -> Params:
    """Parse `;name=value;flag` (leading `;` optional) into ((name, value|None), ...).

    Names are kept as written; values may be tokens or quoted strings (kept with their quotes).
    """
    out: list[tuple[str, str | None]] = []
    text = text.strip()
    if not text:
        return ()
    if text.startswith(";"):
        text = text[1:]
    for raw in split_outside_quotes(text, ";"):
        item = raw.strip()
        if not item:
            raise ValueError("empty parameter")
        name, eq, value = item.partition("=")
        name = name.strip()
        if not is_token(name):
            raise ValueError(f"bad parameter name {name!r}")
        if not eq:
            out.append((name, None))
            continue
        value = value.strip()
        if value.startswith('"'):
            if len(value) < 2 or not value.endswith('"'):
                raise ValueError(f"bad quoted value for {name!r}")
        elif not value or PARAM_VALUE_RE.fullmatch(value) is None:
            raise ValueError(f"bad value for parameter {name!r}")
        out.append((name, value))
    return tuple(out)


def format_params(params: Params) -> str:
    return "".join(f";{k}" if v is None else f";{k}={v}" for k, v in params)


def get_param(params: Params, name: str) -> str | None:
    """Value of the first parameter called `name` (case-insensitive); '' for a bare flag."""
    lname = name.lower()
    for k, v in params:
        if k.lower() == lname:
            return "" if v is None else v
    return None


def has_param(params: Params, name: str) -> bool:
    lname = name.lower()
    return any(k.lower() == lname for k, _ in params)


def set_param(params: Params, name: str, value: str | None) -> Params:
    """Return params with `name` replaced (or appended); quoting is the caller's business."""
    lname = name.lower()
    out = [(k, v) for k, v in params if k.lower() != lname]
    replaced = len(out) != len(params)
    if replaced:
        # keep the position of the first occurrence
        for idx, (k, _) in enumerate(params):
            if k.lower() == lname:
                out.insert(idx, (name, value))
                break
    else:
        out.append((name, value))
    return tuple(out)


def unquote(value: str) -> str:
    """Remove the quotes (and backslash escapes) of a quoted-string; plain tokens pass through."""
    if len(value) >= 2 and value[0] == '"' and value[-1] == '"':
        return re.sub(r"\\(.)", r"\1", value[1:-1])
    return value


def quote(value: str) -> str:
    """Quote a string for a header (RFC 3261 25.1 quoted-string); CR/LF are refused."""
    if "\r" in value or "\n" in value:
        raise ValueError("CR/LF in quoted string")
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
