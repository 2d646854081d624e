"""/docs: Swagger UI served from this process, never from a CDN.

The assets come from the `swagger-ui-py` package, which ships Swagger UI 5 (Apache License
2.0, which allows redistribution; the licence ships with the files, swagger_ui/static/LICENSE).
Swagger UI 5 reads the OpenAPI 3.1 documents FastAPI writes (the 4.x of other bundles does
not). LINKCALL_API_DOCS=false turns /docs and /openapi.json off. ReDoc is not served (its page
would load a CDN script).
"""

from __future__ import annotations

import importlib.resources

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

ASSETS = "/docs/assets"


def install_docs(app: FastAPI) -> None:
    """Mount the Swagger UI assets and the /docs page (only when the OpenAPI document is on)."""
    static = importlib.resources.files("swagger_ui") / "static"
    app.mount(ASSETS, StaticFiles(directory=str(static)), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title="linkcall API",
            swagger_js_url=f"{ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{ASSETS}/favicon-32x32.png",
        )
