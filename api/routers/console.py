"""The web console for dispatchers and supervisors: static files under api/static/console.

The page itself needs no token (it holds no data); every data call it makes sends the bearer
token the user pastes. Everything is served from this origin: the Content-Security-Policy
allows only 'self' (plus blob: for the recording player, which plays audio fetched with the
Authorization header).
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse, RedirectResponse

from api.problems import Problem

router = APIRouter(tags=["console"], include_in_schema=False)

STATIC_DIR = Path(__file__).resolve().parent.parent / "static" / "console"
ASSETS: dict[str, str] = {
    "console.js": "text/javascript; charset=utf-8",
    "bridge_units.js": "text/javascript; charset=utf-8",
    "console.css": "text/css; charset=utf-8",
    "unit.js": "text/javascript; charset=utf-8",
    "unit.css": "text/css; charset=utf-8",
    "history.js": "text/javascript; charset=utf-8",
    "views.css": "text/css; charset=utf-8",
    "admin.js": "text/javascript; charset=utf-8",
    "trend.js": "text/javascript; charset=utf-8",
    "incidents.js": "text/javascript; charset=utf-8",
    "audit.js": "text/javascript; charset=utf-8",
    "ops.js": "text/javascript; charset=utf-8",
    "inbound.js": "text/javascript; charset=utf-8",
    "dutyreport.js": "text/javascript; charset=utf-8",
}
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "media-src 'self' blob:; connect-src 'self'; font-src 'self'; object-src 'none'; "
    "base-uri 'self'; form-action 'self'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-cache",
}


def _file(name: str, media_type: str) -> FileResponse:
    return FileResponse(STATIC_DIR / name, media_type=media_type, headers=SECURITY_HEADERS)


@router.get("/console")
def console_page() -> FileResponse:
    """The console's single page."""
    return _file("index.html", "text/html; charset=utf-8")


@router.get("/console/")
def console_slash() -> RedirectResponse:
    return RedirectResponse("/console", status_code=308)


@router.get("/console/static/{name}")
def console_asset(name: str) -> FileResponse:
    """One of the console's own files (a fixed list: nothing else on disk is reachable)."""
    media_type = ASSETS.get(name)
    if media_type is None:
        raise Problem(404, "Not Found", f"no console file {name!r}", kind="not-found")
    return _file(name, media_type)
