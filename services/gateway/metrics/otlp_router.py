"""OTLP/HTTP metrics receiver at ``POST /v1/metrics`` (an exporter's default path under
its endpoint) and ``POST /api/v1/otlp/v1/metrics`` (Prometheus' path).

Authenticated with an ingest key (``OTEL_EXPORTER_OTLP_HEADERS=Authorization=Bearer%20vk_…``)
and stored as remote write is: validated whole, published as one SamplesIngested event.
Answers follow OTLP/HTTP: 200 with an ExportMetricsServiceResponse in the request's
encoding (its ``partial_success`` counts the points that could not be mapped), errors as
a ``google.rpc.Status`` in that encoding. Exporters retry 429, 502, 503 and 504 and drop
what got another 4xx, so only a full event log or a lagging store answers those.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import time
from typing import Annotated, Any

from fastapi import APIRouter, Header, Request, Response

from services.gateway.common.errors import (
    AUTHENTICATED,
    PROTOCOL_ERROR_CONTENT,
    http_status,
    problems,
)
from services.gateway.common.routes import Ingest
from services.gateway.common.state import StateDep
from services.gateway.metrics.otlp import (
    JSON,
    PROTOBUF,
    export_response,
    parse_export,
    status_body,
)
from services.gateway.metrics.router import publish_samples, read_limited_body
from services.gateway.surface.content_types import media_type
from shared.errors import Overloaded, VigilError
from shared.events import MAX_BATCH_BYTES, MAX_BATCH_SAMPLES, derived_id

PATHS = ("/v1/metrics", "/api/v1/otlp/v1/metrics")

# google.rpc.Code for the HTTP statuses this receiver answers with
RPC_CODES = {400: 3, 401: 16, 403: 7, 413: 8, 415: 3, 422: 3, 429: 8, 502: 14, 503: 14}

router = APIRouter(tags=["metrics"])


class UnsupportedEncoding(VigilError):
    kind = "unsupported_media_type"
    http_status = 415


def _status_response(exc: VigilError, media: str) -> Response:
    status = http_status(exc)
    headers = {}
    if isinstance(exc, Overloaded):
        headers["Retry-After"] = str(max(1, math.ceil(exc.retry_after_s)))
    return Response(
        status_body(RPC_CODES.get(status, 2), exc.message, media),
        status_code=status,
        media_type=media,
        headers=headers,
    )


async def otlp_metrics(
    _: Ingest,
    request: Request,
    state: StateDep,
    content_encoding: Annotated[str | None, Header()] = None,
) -> Response:
    """OTLP/HTTP metrics export: 200 once every mappable point in the request is stored."""
    media = media_type(request.headers.get("content-type", "")) or PROTOBUF
    try:
        encoding = (content_encoding or "identity").strip().lower()
        if encoding not in ("identity", "gzip"):
            raise UnsupportedEncoding(
                f"Content-Encoding: {encoding[:20]} is not accepted; send gzip or none",
                field="Content-Encoding",
            )
        state.health.refuse_writes()
        state.ingest.check()
        body = await read_limited_body(request)
        received_at = time.time()
        # reading OTLP JSON through protobuf's json_format takes ~50 µs a point: in a
        # worker thread, so a large export does not hold up every other request
        export = await asyncio.to_thread(
            parse_export,
            body,
            media,
            encoding == "gzip",
            received_at,
            state.settings.metrics_retention_s,
        )
        if export.samples:
            # an exporter resends the very same bytes after a 5xx or a timeout: the same
            # event id lets JetStream drop the copy when the first attempt was stored
            event_id = derived_id("otlp", media, hashlib.sha256(body).hexdigest())
            await publish_samples(state, export.samples, event_id, received_at, "the same body")
    except VigilError as exc:
        return _status_response(exc, media)
    return Response(export_response(export, media), media_type=media)


_DESCRIPTION = (
    "An OTLP ExportMetricsServiceRequest, protobuf or OTLP JSON, optionally gzip "
    f"(Content-Encoding), of at most {MAX_BATCH_BYTES} bytes and {MAX_BATCH_SAMPLES} "
    "samples once mapped (each histogram bucket is one). Mapped as OpenTelemetry's "
    "Prometheus compatibility specification says; the answer's partial_success counts "
    "the points not stored (delta temporality, exponential histograms, no value)."
)
_BODY = {"type": "string", "format": "binary"}
_STATUS = {
    "type": "object",
    "description": "google.rpc.Status: code (google.rpc.Code) and message",
    "properties": {"code": {"type": "integer"}, "message": {"type": "string"}},
    "required": ["code", "message"],
}
# errors found once the request is read carry a google.rpc.Status in its encoding;
# authentication and the HTTP surface answer problem details
_STATUS_CONTENT = {PROTOCOL_ERROR_CONTENT: {PROTOBUF: {"schema": _BODY}, JSON: {"schema": _STATUS}}}


def _responses() -> dict[int | str, dict[str, Any]]:
    responses = problems(*AUTHENTICATED, 400, 413, 415, 422, 503)
    responses[429] = {
        **responses[429],
        "description": "The metrics store or the alerts evaluator is too far behind",
    }
    for status in (400, 413, 415, 422, 429, 503):
        responses[status].update(_STATUS_CONTENT)
    responses[200] = {
        "description": "ExportMetricsServiceResponse in the request's encoding",
        "content": {PROTOBUF: {"schema": _BODY}, JSON: {"schema": {"type": "object"}}},
    }
    return responses


for _path in PATHS:
    router.add_api_route(
        _path,
        otlp_metrics,
        methods=["POST"],
        status_code=200,
        response_class=Response,
        summary="OTLP/HTTP metrics export",
        responses=_responses(),
        openapi_extra={
            "requestBody": {
                # an empty body is the empty ExportMetricsServiceRequest: nothing to store
                "required": False,
                "description": _DESCRIPTION,
                "content": {PROTOBUF: {"schema": _BODY}, JSON: {"schema": {"type": "object"}}},
            }
        },
        operation_id=f"otlp_metrics_{'prometheus' if _path.startswith('/api') else 'default'}",
    )
