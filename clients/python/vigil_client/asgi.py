"""ASGI middleware: one record per HTTP request, and a last push at lifespan shutdown."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from vigil_client.client import VigilClient
from vigil_client.defaults import default_client

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

ROUTE_KEY = "vigil.route"


def set_route(scope_or_environ: MutableMapping[str, Any], template: str) -> None:
    """Name the route of a request for frameworks the middleware cannot ask itself."""
    scope_or_environ[ROUTE_KEY] = template


def route_template(scope: Scope, root_path: str) -> str | None:
    """The matched route's template: ``set_route``'s, else Starlette's/FastAPI's.

    A route inside a ``Mount`` has a path relative to it; the mount's prefix is what the
    routing added to ``root_path``. A mount that is itself the match (static files, a
    sub-application without routes of its own) is named ``<prefix>/{path:path}``.
    """
    named = scope.get(ROUTE_KEY)
    if isinstance(named, str):
        return named
    route = scope.get("route")
    path = getattr(route, "path", None)
    if not isinstance(path, str):
        return None
    mounted = str(scope.get("root_path", ""))
    prefix = mounted[len(root_path) :] if mounted.startswith(root_path) else ""
    if not hasattr(route, "endpoint"):  # a Mount: no route of its own matched inside
        return f"{prefix or path}/{{path:path}}"
    return prefix + path


class VigilASGIMiddleware:
    """Counts requests, errors (5xx and exceptions) and latency per route.

    ``app.add_middleware(VigilASGIMiddleware, client=client)`` in FastAPI/Starlette, or
    ``VigilASGIMiddleware(app, client)`` around any ASGI app. Without ``client`` it uses
    the default one (``vigil_client.configure``). Recording never waits on the network;
    at lifespan shutdown what is left is sent from a worker thread.
    """

    def __init__(self, app: ASGIApp, client: VigilClient | None = None) -> None:
        self.app = app
        self.client = client

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(scope, receive, send)
            return
        client = self.client or default_client()
        if scope["type"] != "http" or client is None:
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        root_path = str(scope.get("root_path", ""))
        status = 0

        async def recording_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, recording_send)
        except Exception:
            client.record_request(
                route_template(scope, root_path),
                str(scope.get("path", "")),
                str(scope.get("method", "")),
                status or 500,
                time.perf_counter() - started,
                failed=True,
            )
            raise
        client.record_request(
            route_template(scope, root_path),
            str(scope.get("path", "")),
            str(scope.get("method", "")),
            status or 500,
            time.perf_counter() - started,
            failed=status == 0,
        )

    async def _lifespan(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def flushing_send(message: Message) -> None:
            if message["type"] in ("lifespan.shutdown.complete", "lifespan.shutdown.failed"):
                client = self.client or default_client()
                if client is not None:
                    await asyncio.get_running_loop().run_in_executor(None, client.close)
            await send(message)

        await self.app(scope, receive, flushing_send)
