"""Carrying a request to the node that owns what it asks for (issue 16).

A node serves what it owns; a request for a bridge or a recording another node owns is carried
to that node's `LINKCALL_NODE_URL` (from the nodes table) with the caller's own bearer token:
every node reads the same token table, so the owner authenticates, checks the role and audits
the real person, and there is no second secret to manage. A forwarded request carries
`X-Linkcall-Forwarded-By` and is never forwarded again.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import httpx
from fastapi import Request
from fastapi.responses import StreamingResponse
from sqlalchemy.orm import Session

from api.problems import Problem
from storage import nodes as node_repo

log = logging.getLogger(__name__)

FORWARDED_HEADER = "X-Linkcall-Forwarded-By"
FORWARD_TIMEOUT_S = 10.0
# headers of the owner's answer passed on to the client of a proxied download
_PASS_BACK = ("content-type", "content-length", "content-range", "accept-ranges",
              "content-disposition", "etag", "last-modified")  # fmt: skip


def was_forwarded(request: Request) -> bool:
    """The request came from another node: answer it here, never forward it again."""
    return bool(request.headers.get(FORWARDED_HEADER))


def owner_url(session: Session, node: str, what: str) -> str:
    """The API base URL of `node` while it is up; 503 problem otherwise."""
    owner = next((n for n in node_repo.list_nodes(session) if n.name == node), None)
    if owner is None or owner.state != "up" or not owner.url:
        raise Problem(
            503, "Node unavailable", f"{what} is on node {node or '?'}, which cannot be reached",
            kind="node-unavailable",
        )  # fmt: skip
    return owner.url.rstrip("/")


def proxy_get(request: Request, base_url: str, here: str, node: str) -> StreamingResponse:
    """GET the same path and query on `base_url` with the caller's token and Range, and stream
    the owner's answer (status, body and download headers) back as it arrives."""
    headers = {FORWARDED_HEADER: here}
    for name in ("authorization", "range"):
        if value := request.headers.get(name):
            headers[name] = value
    url = base_url + request.url.path
    client = httpx.Client(timeout=httpx.Timeout(FORWARD_TIMEOUT_S, read=60.0))
    try:
        resp = client.send(
            client.build_request("GET", url, params=request.query_params, headers=headers),
            stream=True,
        )
    except httpx.HTTPError as exc:
        client.close()
        raise Problem(
            503, "Node unavailable", f"node {node} did not answer: {type(exc).__name__}",
            kind="node-unavailable",
        ) from exc  # fmt: skip
    log.info("%s proxied from node %s: %d", request.url.path, node, resp.status_code)

    def body() -> Iterator[bytes]:
        try:
            yield from resp.iter_raw(64 * 1024)
        finally:
            resp.close()
            client.close()

    passed = {k: v for k, v in resp.headers.items() if k.lower() in _PASS_BACK}
    return StreamingResponse(body(), status_code=resp.status_code, headers=passed)
