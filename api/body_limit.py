"""A request-body size limit enforced before routing, authentication and parsing.

An ASGI middleware outside routing, dependencies (the token check) and body parsing: a request
that declares a Content-Length above the limit is answered 413 problem+json at once, its body
never read; a body that streams past the limit (chunked) is cut off there and answered 413 as
well. At most `max_bytes` of a body reach the app, so a huge upload cannot grow the process.
"""

from __future__ import annotations

import json

from starlette.types import ASGIApp, Message, Receive, Scope, Send

PROBLEM_BASE = "https://linkcall.invalid/problems/"


class BodyTooLarge(Exception):
    """Raised into the app's body reader once the limit is passed."""


def _problem(path: str, max_bytes: int) -> bytes:
    return json.dumps(
        {
            "type": PROBLEM_BASE + "too-large",
            "title": "Request body too large",
            "status": 413,
            "detail": f"request bodies are limited to {max_bytes} bytes",
            "instance": path,
            "max_bytes": max_bytes,
        }
    ).encode()


class BodyLimit:
    """Wraps an ASGI app; `max_bytes` is LINKCALL_HTTP_MAX_BODY_BYTES."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def _refuse(self, scope: Scope, send: Send) -> None:
        body = _problem(scope.get("path", ""), self.max_bytes)
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/problem+json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = -1
                if declared < 0 or declared > self.max_bytes:
                    await self._refuse(scope, send)
                    return
        seen = 0
        exceeded = False
        started = False

        async def limited_receive() -> Message:
            nonlocal seen, exceeded
            if exceeded:
                raise BodyTooLarge
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    exceeded = True
                    raise BodyTooLarge
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if exceeded:
                return  # the app's answer to a cut-off body is replaced by our 413
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except BodyTooLarge:
            pass
        except Exception:
            if not exceeded:
                raise
        if exceeded and not started:
            await self._refuse(scope, send)
