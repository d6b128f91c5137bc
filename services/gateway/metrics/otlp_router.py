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
import time
from typing import Annotated

from fastapi import APIRouter, Header, Request, Response

from services.gateway.common.routes import Ingest
from services.gateway.common.state import StateDep
from services.gateway.metrics.otlp import (
    PROTOBUF,
    export_response,
    parse_export,
)
from services.gateway.metrics.otlp_http import (
    REQUEST_CONTENT,
    gzipped,
    otlp_responses,
    status_response,
)
from services.gateway.metrics.router import publish_samples, read_limited_body
from services.gateway.surface.content_types import media_type
from shared.errors import VigilError
from shared.events import MAX_BATCH_BYTES, MAX_BATCH_SAMPLES, derived_id

PATHS = ("/v1/metrics", "/api/v1/otlp/v1/metrics")

router = APIRouter(tags=["metrics"])


async def otlp_metrics(
    _: Ingest,
    request: Request,
    state: StateDep,
    content_encoding: Annotated[str | None, Header()] = None,
) -> Response:
    """OTLP/HTTP metrics export: 200 once every mappable point in the request is stored."""
    media = media_type(request.headers.get("content-type", "")) or PROTOBUF
    try:
        gzip = gzipped(content_encoding)
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
            gzip,
            received_at,
            state.settings.metrics_retention_s,
        )
        if export.samples:
            # an exporter resends the very same bytes after a 5xx or a timeout: the same
            # event id lets JetStream drop the copy when the first attempt was stored
            event_id = derived_id("otlp", media, hashlib.sha256(body).hexdigest())
            await publish_samples(state, export.samples, event_id, received_at, "the same body")
    except VigilError as exc:
        return status_response(exc, media)
    return Response(export_response(export, media), media_type=media)


_DESCRIPTION = (
    "An OTLP ExportMetricsServiceRequest, protobuf or OTLP JSON, optionally gzip "
    f"(Content-Encoding), of at most {MAX_BATCH_BYTES} bytes and {MAX_BATCH_SAMPLES} "
    "samples once mapped (each histogram bucket is one). Mapped as OpenTelemetry's "
    "Prometheus compatibility specification says; the answer's partial_success counts "
    "the points not stored (delta temporality, exponential histograms, no value)."
)
for _path in PATHS:
    router.add_api_route(
        _path,
        otlp_metrics,
        methods=["POST"],
        status_code=200,
        response_class=Response,
        summary="OTLP/HTTP metrics export",
        responses=otlp_responses(
            "The metrics store or the alerts evaluator is too far behind",
            "ExportMetricsServiceResponse",
        ),
        openapi_extra={
            "requestBody": {
                # an empty body is the empty ExportMetricsServiceRequest: nothing to store
                "required": False,
                "description": _DESCRIPTION,
                "content": REQUEST_CONTENT,
            }
        },
        operation_id=f"otlp_metrics_{'prometheus' if _path.startswith('/api') else 'default'}",
    )
