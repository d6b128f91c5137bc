"""Every write through the HTTP API becomes an audit event, refused attempts included.

A pure ASGI middleware, outside every other one, so it also sees what the surface refuses
(wrong content type, foreign Host) and what authentication refuses (401, 403, 429). It
never reads a body or a header's value: who comes from the identity the route resolved
(or the id of a key a refused request presented), what from the route template.
Successful sample ingests are left out: their events on METRICS are their record.
"""

from __future__ import annotations

from typing import Any, Literal

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.gateway.access import Identity
from services.gateway.audit.recorder import AuditRecorder
from services.gateway.identity.clients import client_address
from shared.events import AuditRecorded
from shared.events.audit import outcome_of
from shared.labels import printable

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# sample and log ingest: an accepted batch is in METRICS (LOGS) already, and a refused
# one is audited
INGEST_ROUTES = frozenset(
    {
        "/api/monitoring/metrics",
        "/api/monitoring/logs",
        "/api/v1/write",
        "/v1/metrics",
        "/api/v1/otlp/v1/metrics",
    }
)
MAX_TEXT = 200


class AuditMiddleware:
    def __init__(self, app: ASGIApp, recorder: AuditRecorder):
        self.app = app
        self.recorder = recorder

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in SAFE_METHODS:
            await self.app(scope, receive, send)
            return
        scope.setdefault("state", {})  # shared with the request, which the route fills in
        status = 500

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            event = audit_event(scope, status)
            if event is not None:
                self.recorder.record(event)


def audit_event(scope: Scope, status: int) -> AuditRecorded | None:
    method = str(scope["method"])[:10]
    route = getattr(scope.get("route"), "path", None)
    template = route if isinstance(route, str) else printable(str(scope.get("path", "")), MAX_TEXT)
    if template in INGEST_ROUTES and method == "POST" and status < 400:
        return None
    state: dict[str, Any] = scope.get("state") or {}
    identity = state.get("identity")
    target = {
        str(k)[:MAX_TEXT]: printable(str(v), MAX_TEXT)
        for k, v in (scope.get("path_params") or {}).items()
    }
    kind: Literal["user", "key", "anonymous"]
    if isinstance(identity, Identity):
        actor, kind = identity.actor, identity.kind
        key_id, role = identity.key_id or "", str(identity.role)
    else:
        # a login or setup names the user it was for; anything else refused is anonymous
        attempted = state.get("audit_actor")
        presented = state.get("presented_key_id") or ""
        actor = str(attempted) if attempted else "anonymous"
        kind = "user" if attempted and status < 400 else "anonymous"
        key_id, role = str(presented), ""
    return AuditRecorded(
        aggregate_id=kind,
        actor=actor,
        identity_kind=kind,
        key_id=key_id,
        role=role,
        method=method,
        route=template,
        target=target,
        client=client_address(Request(scope))[:100],
        status=status,
        outcome=outcome_of(status),
    )
