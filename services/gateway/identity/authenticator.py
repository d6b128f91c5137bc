"""Who is calling: an API key (``Authorization: Bearer``) or a browser session (cookie),
found in the in-memory cache, so a request costs one SHA-256 and a dictionary lookup.

A cookie-authenticated write must also carry the session's CSRF token in ``X-CSRF-Token``
and, when the browser names it, an Origin of this site: a page elsewhere can make the
browser send the cookie, but can neither read the token nor fake its own origin.
Bearer keys need neither: a browser never adds them by itself.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from fastapi import Request

from services.gateway.access import Identity
from services.gateway.identity.cache import IdentityCache
from services.gateway.identity.credentials import csrf_token, digest, presented_key_id
from services.gateway.identity.ratelimit import IdentityLimits
from shared.errors import Forbidden, Unauthenticated

SESSION_COOKIE = "vigil_session"
CSRF_COOKIE = "vigil_csrf"
CSRF_HEADER = "x-csrf-token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# sample batches: POST /api/monitoring/metrics and Prometheus remote write
INGEST_PATH_SUFFIX = ("/metrics", "/api/v1/write")


class KeyAndSessionAuthenticator:
    def __init__(
        self,
        cache: IdentityCache,
        limits: IdentityLimits,
        allowed_origins: Callable[[], Iterable[str]] = tuple,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ):
        self.cache = cache
        self.limits = limits
        self.allowed_origins = allowed_origins
        self.clock = clock

    async def authenticate(self, request: Request) -> Identity:
        header = request.headers.get("authorization")
        if header is not None:
            identity = self._by_key(request, header)
        else:
            identity = self._by_session(request)
        ingest = request.method == "POST" and request.url.path.endswith(INGEST_PATH_SUFFIX)
        self.limits.take(f"{identity.kind}:{identity.key_id or identity.name}", ingest)
        return identity

    def still_valid(self, request: Request) -> Callable[[], bool]:
        """For a long answer (the live stream): whether the credentials the request came
        with still hold, so a session that ends or a key revoked or expired ends it too.
        One dictionary lookup a call."""
        now = self.clock
        header = request.headers.get("authorization")
        if header is not None:
            key_hash = digest(header.strip().partition(" ")[2].strip())

            def key_holds() -> bool:
                key = self.cache.key_for(key_hash)
                return key is not None and (key.expires_at is None or key.expires_at > now())

            return key_holds
        token_hash = digest(request.cookies.get(SESSION_COOKIE, ""))

        def session_holds() -> bool:
            found = self.cache.session_for(token_hash)
            return found is not None and found[0].expires_at > now()

        return session_holds

    def _by_key(self, request: Request, header: str) -> Identity:
        scheme, _, value = header.strip().partition(" ")
        value = value.strip()
        if scheme.lower() != "bearer" or not value:
            raise Unauthenticated(
                "Authorization: expected 'Bearer <API key>'", field="Authorization"
            )
        key = self.cache.key_for(digest(value))
        if key is None:
            request.state.presented_key_id = presented_key_id(value)
            raise Unauthenticated("the API key is unknown or revoked", field="Authorization")
        if key.expires_at is not None and key.expires_at <= self.clock():
            request.state.presented_key_id = key.key_id
            raise Unauthenticated(
                f"the API key {key.key_id} expired at {key.expires_at.isoformat()}",
                field="Authorization",
            )
        role: Any = key.role
        return Identity(kind="key", name=key.name, role=role, key_id=key.key_id)

    def _by_session(self, request: Request) -> Identity:
        token = request.cookies.get(SESSION_COOKIE)
        if not token:
            raise Unauthenticated(
                "no credentials: send 'Authorization: Bearer <API key>' or log in"
            )
        found = self.cache.session_for(digest(token))
        if found is None or found[0].expires_at <= self.clock():
            raise Unauthenticated("the session has ended; log in again")
        session, user = found
        if request.method not in SAFE_METHODS:
            self.check_csrf(request, token)
        role: Any = user.role
        return Identity(kind="user", name=user.name, role=role, session_id=session.session_id)

    def check_csrf(self, request: Request, token: str) -> None:
        sent = request.headers.get(CSRF_HEADER, "")
        if not hmac.compare_digest(sent.encode(), csrf_token(token).encode()):
            raise Forbidden(
                "X-CSRF-Token: a write with a session cookie must send the vigil_csrf "
                "cookie's value in this header",
                field="X-CSRF-Token",
            )
        self.check_origin(request)

    def check_origin(self, request: Request) -> None:
        """A browser names the page that sent a request; it must be this site (or one the
        operator allowed for CORS)."""
        origin = request.headers.get("origin")
        if origin is None:
            return
        host = request.headers.get("host", "")
        parts = urlsplit(origin)
        if parts.netloc and parts.netloc.lower() == host.lower():
            return
        if origin.rstrip("/") in {o.rstrip("/") for o in self.allowed_origins()}:
            return
        raise Forbidden(f"Origin: {origin!r} is not this site", field="Origin")
