"""The HTTP app: every section's router, one error body (problem details), the dashboard.

Reads come from the gateway's read models; commands go to the owning services and wait
for the read model to show them (``common.owners``).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

from services.gateway import identity, sections, selfmetrics, surface
from services.gateway.common import errors
from services.gateway.common.paths import PREFIX
from services.gateway.common.state import GatewayState

log = logging.getLogger(__name__)

__all__ = ["PREFIX", "create_app"]

STATIC_DIR = Path(__file__).parent / "static"
DASHBOARD_PATHS = ("/", "/monitoring")
# the page of the one-time link printed on a fresh install (identity.section.offer_setup)
SETUP_PATH = "/monitoring/setup"
# every route needs one of these unless it says ``security: []`` (common.routes.PUBLIC)
SECURITY_SCHEMES: dict[str, dict[str, Any]] = {
    "apiKey": {
        "type": "http",
        "scheme": "bearer",
        "description": "An API key: Authorization: Bearer vk_...",
    },
    "session": {
        "type": "apiKey",
        "in": "cookie",
        "name": "vigil_session",
        "description": "A browser session from POST /api/monitoring/auth/login; writes also "
        "need the X-CSRF-Token header",
    },
}


# Sections that install middleware or an authenticator, in this order: the HTTP surface
# (hosts, content types, headers) first, then identity (the authenticator ``require``
# asks). Each exposes ``install(app, state)``; one not present is skipped.
def create_app(state: GatewayState) -> FastAPI:
    app = FastAPI(
        title="Vigil",
        description="Monitoring, alerting and incident management on an event log",
        version="0.1.0",
        docs_url="/docs",
    )
    app.state.gateway = state
    errors.install(app)
    for projection in sections.PROJECTIONS:
        state.projection_by_stream.setdefault(projection.stream.name, projection.name)
    for router in sections.ROUTERS:
        app.include_router(router)

    async def dashboard_page() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html")

    async def setup_page() -> FileResponse:
        return FileResponse(STATIC_DIR / "setup.html")

    for path in DASHBOARD_PATHS:
        app.add_api_route(path, dashboard_page, methods=["GET"], include_in_schema=False)
    app.add_api_route(SETUP_PATH, setup_page, methods=["GET"], include_in_schema=False)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    surface.install(app, state)  # Host, CORS, media types, headers: before anything runs
    identity.install(app, state)  # who is asking, and the audit log of every write
    selfmetrics.install(app)  # outermost: every request counted, refused ones too

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = errors.use_problem_media_type(FastAPI.openapi(app))
            components = schema.setdefault("components", {})
            components.setdefault("securitySchemes", {}).update(SECURITY_SCHEMES)
            schema["security"] = [{name: []} for name in SECURITY_SCHEMES]
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app
