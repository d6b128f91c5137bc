"""The gateway's front door, one ASGI middleware, in this order:

1. the client and scheme as a trusted reverse proxy reports them;
2. the Host header against the names the gateway answers to (400);
3. CORS: closed unless ``VIGIL_CORS_ORIGINS`` lists the origin; a write from a page on
   another origin is refused (403) whatever its credentials;
4. a write's media type against its route's declared types (415);
5. security headers on every response, refusals included.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from starlette.datastructures import Headers
from starlette.middleware.cors import CORSMiddleware
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.gateway.surface.content_types import WRITES, DeclaredTypes, refusal
from services.gateway.surface.headers import with_security_headers
from services.gateway.surface.hosts import HostPolicy
from services.gateway.surface.problems import send_problem
from services.gateway.surface.proxies import TrustedProxies

CORS_HEADERS = ["Authorization", "Content-Type", "Idempotency-Key", "X-CSRF-Token"]
CORS_EXPOSED = ["Retry-After", "Location"]
DEFAULT_PORTS = {"http": 80, "https": 443}


def origin_netloc(origin: str) -> str | None:
    """``host:port`` of an origin with its default port spelled out; None if malformed."""
    try:
        parts = urlsplit(origin)
        port = parts.port or DEFAULT_PORTS.get(parts.scheme)
    except ValueError:
        return None
    if not parts.hostname or port is None:
        return None
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return f"{host}:{port}"


def host_netloc(host: str, scheme: str) -> str | None:
    return origin_netloc(f"{scheme}://{host}")


@dataclass(frozen=True)
class SurfacePolicy:
    hosts: HostPolicy
    proxies: TrustedProxies
    cors_origins: frozenset[str]


class SurfaceMiddleware:
    def __init__(self, app: ASGIApp, policy: SurfacePolicy, routes: list[BaseRoute]) -> None:
        self.policy = policy
        self.declared = DeclaredTypes(routes)
        self.inner = app
        self.app: ASGIApp = (
            CORSMiddleware(
                app,
                allow_origins=sorted(policy.cors_origins),
                allow_methods=["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"],
                allow_headers=CORS_HEADERS,
                expose_headers=CORS_EXPOSED,
                max_age=600,
            )
            if policy.cors_origins
            else app
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.inner(scope, receive, send)
            return

        async def send_secured(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = with_security_headers(list(message.get("headers", [])))
            await send(message)

        scope = self._as_forwarded(scope)
        why = self._refusal(scope)
        if why is not None:
            status, detail, field = why
            await send_problem(scope, send_secured, status, detail, field)
            return
        await self.app(scope, receive, send_secured)

    def _as_forwarded(self, scope: Scope) -> Scope:
        """The request as the client made it, when a trusted proxy passed it on."""
        proxies = self.policy.proxies
        if not proxies.networks or not proxies.trusts(
            scope["client"][0] if scope.get("client") else None
        ):
            return scope
        forwarded = dict(scope)
        forwarded["client"] = (proxies.client(scope), 0)
        forwarded["scheme"] = proxies.scheme(scope)
        return forwarded

    def _refusal(self, scope: Scope) -> tuple[int, str, str] | None:
        headers = Headers(scope=scope)
        host = self.policy.proxies.host(scope)
        if not self.policy.hosts.allows(host):
            return (
                400,
                f"Host: {(host or '')[:100]!r} is not a name this server answers to; "
                "add it to VIGIL_ALLOWED_HOSTS",
                "Host",
            )
        method = scope["method"]
        origin = headers.get("origin")
        preflight = method == "OPTIONS" and "access-control-request-method" in headers
        if origin is not None and preflight:
            if origin.lower() not in self.policy.cors_origins:
                return (
                    403,
                    f"Origin: {origin[:100]!r} may not call this API from a browser; "
                    "VIGIL_CORS_ORIGINS lists the origins that may",
                    "Origin",
                )
            return None
        if method not in WRITES:
            return None
        if origin is not None and not self._same_or_allowed(origin, host, scope):
            return (
                403,
                f"Origin: a page on {origin[:100]!r} may not write here; "
                "VIGIL_CORS_ORIGINS lists the origins that may",
                "Origin",
            )
        accepted = self.declared.of(scope)
        if accepted is None:
            return None
        problem = refusal(scope, headers, accepted)
        return None if problem is None else (415, problem, "Content-Type")

    def _same_or_allowed(self, origin: str, host: str | None, scope: Scope) -> bool:
        if origin.lower() in self.policy.cors_origins:
            return True
        if host is None:
            return False
        theirs = origin_netloc(origin.lower())
        return theirs is not None and theirs == host_netloc(host.lower(), scope["scheme"])
