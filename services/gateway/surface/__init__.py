"""The HTTP surface of the gateway: what any request meets before a route.

``install(app, state)`` adds the front-door middleware (trusted proxies, Host check,
CORS, declared media types, security headers) and the offline API documentation pages.
``client_address(request)`` is the client as audit records and rate limits name it.
"""

from __future__ import annotations

from fastapi import FastAPI, Request

from services.gateway.common.state import GatewayState
from services.gateway.surface.docs import install_docs
from services.gateway.surface.hosts import HostPolicy
from services.gateway.surface.middleware import SurfaceMiddleware, SurfacePolicy
from services.gateway.surface.proxies import TrustedProxies

__all__ = ["client_address", "install", "request_is_secure"]


def install(app: FastAPI, state: GatewayState) -> None:
    """Idempotent: a second call changes nothing."""
    if getattr(app.state, "surface", None) is not None:
        return
    settings = state.settings
    policy = SurfacePolicy(
        hosts=HostPolicy.of(settings.allowed_hosts, settings.host),
        proxies=TrustedProxies.of(settings.trusted_proxies),
        cors_origins=frozenset(settings.cors_origins),
    )
    app.state.surface = policy
    install_docs(app)
    app.add_middleware(SurfaceMiddleware, policy=policy, routes=app.router.routes)


def _proxies(request: Request) -> TrustedProxies:
    policy: SurfacePolicy | None = getattr(request.app.state, "surface", None)
    return policy.proxies if policy is not None else TrustedProxies()


def client_address(request: Request) -> str:
    """The client's IP address; behind a trusted reverse proxy, the one it forwarded for.
    Works outside the surface middleware too (from the raw request)."""
    return _proxies(request).client(request.scope)


def request_is_secure(request: Request) -> bool:
    """HTTPS end to end as far as the client is concerned (TLS here, or at a trusted
    proxy that says so)."""
    return _proxies(request).scheme(request.scope) == "https"
