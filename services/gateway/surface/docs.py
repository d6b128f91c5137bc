"""``/docs`` (Swagger UI) and ``/redoc`` served with no internet access.

The assets are the ones fastapi-offline ships, served by the gateway under
``/static/docs/``; the pages start them from script files, so their policy needs no
inline script. ReDoc injects its styles at run time: each page has a fresh nonce that
its policy allows on styles, and the styles the page's scripts create carry it
(``redoc-offline.js``); no other inline style is allowed.
"""

from __future__ import annotations

import secrets
from html import escape
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from starlette.routing import BaseRoute, Mount, Route

ASSETS_URL = "/static/docs"
OWN_ASSETS = Path(__file__).parent.parent / "static" / "docs"
OFFLINE_ASSETS = ("fastapi_offline", "static")

SWAGGER_POLICY = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    )
)


def redoc_policy(nonce: str) -> str:
    return "; ".join(
        (
            "default-src 'self'",
            "script-src 'self'",
            f"style-src 'self' 'nonce-{nonce}'",
            "img-src 'self' data:",
            "font-src 'self' data:",
            "connect-src 'self'",
            "worker-src 'self' blob:",
            "object-src 'none'",
            "base-uri 'none'",
            "form-action 'self'",
            "frame-ancestors 'none'",
        )
    )


def swagger_page(title: str, openapi_url: str) -> str:
    return f"""<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>{escape(title)} - API</title>
  <link rel="icon" href="{ASSETS_URL}/favicon.png">
  <link rel="stylesheet" href="{ASSETS_URL}/swagger-ui.css">
</head>
<body>
  <div id="swagger-ui" data-openapi="{escape(openapi_url)}"></div>
  <script src="{ASSETS_URL}/swagger-ui-bundle.js"></script>
  <script src="{ASSETS_URL}/swagger-init.js"></script>
</body>
</html>
"""


def redoc_page(title: str, openapi_url: str, nonce: str) -> str:
    return f"""<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>{escape(title)} - API reference</title>
  <link rel="icon" href="{ASSETS_URL}/favicon.png">
  <link rel="stylesheet" href="{ASSETS_URL}/redoc.css">
</head>
<body>
  <div id="redoc" data-openapi="{escape(openapi_url)}"></div>
  <script src="{ASSETS_URL}/redoc-offline.js" nonce="{nonce}"></script>
  <script src="{ASSETS_URL}/redoc.standalone.js"></script>
  <script src="{ASSETS_URL}/redoc-init.js" nonce="{nonce}"></script>
</body>
</html>
"""


def _is_replaced(route: BaseRoute, paths: set[str]) -> bool:
    return isinstance(route, Route) and route.path in paths


def install_docs(app: FastAPI) -> None:
    """Replace FastAPI's CDN-loading pages with offline ones (same paths)."""
    docs_url, redoc_url = "/docs", "/redoc"
    replaced = {docs_url, redoc_url}
    if app.swagger_ui_oauth2_redirect_url:
        replaced.add(app.swagger_ui_oauth2_redirect_url)
    app.router.routes[:] = [r for r in app.router.routes if not _is_replaced(r, replaced)]
    app.docs_url, app.redoc_url, app.swagger_ui_oauth2_redirect_url = docs_url, redoc_url, None
    openapi_url = app.openapi_url or "/openapi.json"
    assets = StaticFiles(directory=OWN_ASSETS, packages=[OFFLINE_ASSETS])
    # ahead of the dashboard's /static mount, which would otherwise take these paths
    app.router.routes.insert(0, Mount(ASSETS_URL, app=assets, name="docs-assets"))

    @app.get(docs_url, include_in_schema=False)
    async def swagger_ui() -> HTMLResponse:
        return HTMLResponse(
            swagger_page(app.title, openapi_url),
            headers={"Content-Security-Policy": SWAGGER_POLICY, "Cache-Control": "no-store"},
        )

    @app.get(redoc_url, include_in_schema=False)
    async def redoc() -> HTMLResponse:
        nonce = secrets.token_urlsafe(18)
        return HTMLResponse(
            redoc_page(app.title, openapi_url, nonce),
            headers={"Content-Security-Policy": redoc_policy(nonce), "Cache-Control": "no-store"},
        )
