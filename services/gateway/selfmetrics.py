"""``GET /metrics`` and ``GET /metrics/{service}``: each service's own figures in the
Prometheus text format, so Vigil can be watched by Vigil and by Prometheus.

Only the gateway listens on HTTP: the others answer ``vigil.query.selfmetrics.<service>``
over NATS, and a service that does not answer in time is a 503 naming it. Reading them
needs the viewer role (a viewer API key in Prometheus's ``authorization`` block).
"""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter, FastAPI, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.gateway.common.errors import AUTHENTICATED, problems
from services.gateway.common.routes import Viewer
from services.gateway.common.state import GatewayState, StateDep
from shared import subjects
from shared.errors import NotFound, Unavailable
from shared.selfmetrics import CONTENT_TYPE, REGISTRY, Registry, exposition
from shared.services import SERVICES

# a scrape is short: a service that has not answered by then is reported down
SELF_METRICS_TIMEOUT_S = 2.0
GATEWAY = "gateway"

HTTP_REQUESTS = REGISTRY.counter(
    "vigil_http_requests_total",
    "HTTP requests the gateway answered, by method, route template and status.",
    labels=("method", "route", "status"),
)
HTTP_SECONDS = REGISTRY.histogram(
    "vigil_http_request_duration_seconds",
    "Time to answer an HTTP request (to the end of the response), by method and route.",
    labels=("method", "route"),
)

router = APIRouter(tags=["health"])
TEXT: dict[int | str, dict[str, Any]] = {
    200: {"content": {CONTENT_TYPE: {}}, "description": "Prometheus text format 0.0.4"}
}


def log_figures(state: GatewayState) -> Registry:
    """What the gateway last gathered about the event log (every durable of every service,
    every stream), as gauges: the lag a consumer's own process cannot see."""
    figures = Registry()
    health = state.health
    pending = figures.gauge(
        "vigil_consumer_pending_messages",
        "Messages on a durable's stream it has not been delivered yet.",
        labels=("stream", "consumer"),
    )
    unacked = figures.gauge(
        "vigil_consumer_ack_pending_messages",
        "Messages delivered to a durable and not acknowledged yet.",
        labels=("stream", "consumer"),
    )
    stalled = figures.gauge(
        "vigil_consumer_stalled_seconds",
        "How long a durable with work waiting has not moved (0 when it moves).",
        labels=("stream", "consumer"),
    )
    for c in health.consumers:
        pending.set(c.pending, stream=c.stream, consumer=c.durable)
        unacked.set(c.ack_pending, stream=c.stream, consumer=c.durable)
        stalled.set(c.stalled_s, stream=c.stream, consumer=c.durable)
    size = figures.gauge("vigil_stream_bytes", "Bytes a stream holds.", labels=("stream",))
    limit = figures.gauge(
        "vigil_stream_max_bytes", "A stream's byte limit (-1: none).", labels=("stream",)
    )
    for stream in health.streams:
        size.set(stream.bytes, stream=stream.name)
        limit.set(stream.max_bytes, stream=stream.name)
    return figures


@router.get("/metrics", responses={**TEXT, **problems(*AUTHENTICATED)})
async def gateway_metrics(state: StateDep, _: Viewer) -> Response:
    """The gateway's own figures: process, consumers, HTTP requests, and the event log's
    streams and durables as it last saw them."""
    return Response(exposition(GATEWAY, REGISTRY, log_figures(state)), media_type=CONTENT_TYPE)


@router.get("/metrics/{service}", responses={**TEXT, **problems(*AUTHENTICATED, 404, 503)})
async def service_metrics(service: str, state: StateDep, _: Viewer) -> Response:
    """Another service's own figures, asked of it over NATS."""
    if service not in SERVICES:
        raise NotFound(f"service: {service!r} is not one of {', '.join(SERVICES)}")
    if service == GATEWAY:
        return await gateway_metrics(state, _)
    try:
        reply: Any = await state.bus().request(
            subjects.self_metrics(service), {}, timeout=SELF_METRICS_TIMEOUT_S
        )
    except Unavailable:
        raise Unavailable(
            f"service {service} did not answer for its metrics within {SELF_METRICS_TIMEOUT_S:g} s"
        ) from None
    text = reply.get("text") if isinstance(reply, dict) else None
    if not isinstance(text, str):
        raise Unavailable(f"service {service} answered without its metrics")
    return Response(text, media_type=CONTENT_TYPE)


class HttpFigures:
    """Counts every request by its route template (never the raw path: one series per
    route, whatever ids callers send) and times it to the end of the response."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            method = str(scope.get("method", ""))
            HTTP_REQUESTS.inc(method=method, route=route, status=str(status))
            HTTP_SECONDS.observe(time.perf_counter() - started, method=method, route=route)


def install(app: FastAPI) -> None:
    app.add_middleware(HttpFigures)
