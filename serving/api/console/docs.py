"""/docs and /redoc from the package's own copies of Swagger UI and ReDoc: they work with no network.

FastAPI's defaults load both from a CDN, which leaves the pages blank on a closed network.
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import HTMLResponse

from cxpredict.serving.api.console.routes import STATIC_URL

VENDOR = f"{STATIC_URL}/vendor"


def install_docs(app: FastAPI) -> None:
    """Serve /docs and /redoc from the vendored assets (the app must be built with docs_url=redoc_url=None)."""
    openapi_url = app.openapi_url or "/openapi.json"

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=openapi_url, title=f"{app.title} · API docs",
            oauth2_redirect_url="/docs/oauth2-redirect",
            swagger_js_url=f"{VENDOR}/swagger-ui/swagger-ui-bundle.js",
            swagger_css_url=f"{VENDOR}/swagger-ui/swagger-ui.css",
            swagger_favicon_url=f"{VENDOR}/swagger-ui/favicon-32x32.png",
            swagger_ui_parameters={"validatorUrl": None},  # the validator badge would call an outside service
        )

    @app.get("/docs/oauth2-redirect", include_in_schema=False)
    async def swagger_ui_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    @app.get("/redoc", include_in_schema=False)
    async def redoc(request: Request) -> HTMLResponse:
        return get_redoc_html(openapi_url=openapi_url, title=f"{app.title} · API reference",
                              redoc_js_url=f"{VENDOR}/redoc/redoc.standalone.js",
                              redoc_favicon_url=f"{STATIC_URL}/favicon.svg", with_google_fonts=False)
