"""No NUL character (U+0000) gets past the edge of the API.

PostgreSQL cannot hold U+0000 in a text value, nor compare a column with one: a request that
carried one into a query (`GET /api/v1/audit?actor=a%00b`, a token's name, a unit code in
`POST /api/v1/bridges`) failed in the database and was answered 500, while SQLite took it. No
field of this API has a use for the character, so every request is checked once, in one app-wide
dependency that runs before any handler touches the database: the path and query parameters, and
every key and string of a JSON body. One found is a 422 problem naming the field, on either
database alike.

The JSON body is the one FastAPI has already parsed (Starlette keeps it on the request), so the
check parses nothing twice. Bodies of other types (the roster sheet upload) are parsed by their
own readers, which refuse control characters themselves (registry/text.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from fastapi import Request

from api.problems import Problem

NUL = "\x00"
_MAX_DEPTH = 64  # deeper JSON is not walked further (no request of this API nests that deep)


def _nul_fields(value: Any, where: str, depth: int = 0) -> Iterator[str]:
    """The locations (`body.caller.number`, `body.staff.0.name`) of strings holding NUL."""
    if depth > _MAX_DEPTH:
        return
    if isinstance(value, str):
        if NUL in value:
            yield where
    elif isinstance(value, dict):
        for key, item in value.items():
            if NUL in key:
                yield f"{where}.{key.replace(NUL, '?')}"
            yield from _nul_fields(item, f"{where}.{key.replace(NUL, '?')}", depth + 1)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _nul_fields(item, f"{where}.{i}", depth + 1)


def _is_json(request: Request) -> bool:
    ctype = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    return ctype == "application/json" or (
        ctype.startswith("application/") and ctype.endswith("+json")
    )


async def refuse_nul_characters(request: Request) -> None:
    """App-wide dependency: a 422 problem when any parameter or JSON string holds U+0000."""
    found: list[str] = []
    for name, value in request.path_params.items():
        if isinstance(value, str) and NUL in value:
            found.append(f"path.{name}")
    for name, value in request.query_params.multi_items():
        if NUL in name or NUL in value:
            found.append(f"query.{name.replace(NUL, '?')}")
    if _is_json(request) and await request.body():
        try:
            body = await request.json()
        except (ValueError, RecursionError):
            # malformed or nested past the parser's recursion limit: FastAPI answers that itself
            # on a route with a body (400), and a route without one never reads it
            body = None
        found.extend(_nul_fields(body, "body"))
    if found:
        message = "contains a NUL character (U+0000), which no field accepts"
        errors = [{"field": f, "message": message, "type": "nul_character"} for f in found]
        raise Problem(
            422,
            "Invalid request",
            "; ".join(f"{e['field']}: {message}" for e in errors[:5]),
            kind="validation",
            errors=errors,
        )
