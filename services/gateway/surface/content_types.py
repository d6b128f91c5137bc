"""Writes accept only the media types their route declares.

A browser sends ``text/plain``, form and multipart bodies to any origin without asking
first (CORS "simple" requests); the JSON API accepts none of them,
so a page elsewhere cannot make an operator's browser act. A route declares other types
in its OpenAPI request body (``openapi_extra={"requestBody": {"content": {...}}}``), as a
protocol endpoint would; everything else takes ``application/json``.

A write with no body needs no Content-Type: a bodyless POST (an acknowledge) is
either anonymous, and its route answers 401, or carries the browser's session cookie,
and then the session's CSRF token too (``identity.authenticator``: 403 without it), which
a page elsewhere can neither read nor send cross-origin without a CORS grant. Deciding it
there, after the session is known, lets a stale cookie get its 401.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fastapi.routing import APIRoute, RouteContext, iter_route_contexts
from starlette.datastructures import Headers
from starlette.routing import BaseRoute, Match
from starlette.types import Scope

JSON = "application/json"
WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def media_type(content_type: str) -> str:
    return content_type.partition(";")[0].strip().lower()


def declared_types(route: APIRoute) -> frozenset[str]:
    extra: dict[str, Any] = route.openapi_extra or {}
    content = extra.get("requestBody", {}).get("content")
    if isinstance(content, dict) and content:
        return frozenset(media_type(name) for name in content)
    body = route.body_field
    declared = getattr(getattr(body, "field_info", None), "media_type", None) if body else None
    return frozenset({media_type(declared or JSON)})


class DeclaredTypes:
    """The media types each API route declares, looked up by request.

    The table is built at the first write, when every route is in place (routes are all
    declared before the server starts)."""

    def __init__(self, routes: Sequence[BaseRoute]):
        self.routes = routes
        self.table: list[tuple[RouteContext, frozenset[str]]] | None = None

    def _build(self) -> list[tuple[RouteContext, frozenset[str]]]:
        return [
            (context, declared_types(context.original_route))
            for context in iter_route_contexts(self.routes)
            if isinstance(context.original_route, APIRoute)
        ]

    def of(self, scope: Scope) -> frozenset[str] | None:
        """The media types of the route this request goes to; None when no API route
        takes it (the app then answers 404 or 405)."""
        if self.table is None:
            self.table = self._build()
        for context, types in self.table:
            match, _ = context.matches(scope)
            if match is Match.FULL:
                return types
        return None


def has_body(headers: Headers) -> bool:
    length = headers.get("content-length")
    if length is not None:
        return length.strip() != "0"
    return "transfer-encoding" in headers


def refusal(scope: Scope, headers: Headers, accepted: frozenset[str]) -> str | None:
    """Why this write may not go on, or None."""
    expected = " or ".join(sorted(accepted))
    content_type = headers.get("content-type")
    if content_type is not None:
        if media_type(content_type) in accepted:
            return None
        sent = media_type(content_type) or "empty"
        return f"Content-Type: {sent} is not accepted; send {expected}"
    if has_body(headers):
        return f"Content-Type: missing; send {expected}"
    return None
