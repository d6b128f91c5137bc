"""Prometheus remote-write 1.0 receiver at Prometheus' own path, ``POST /api/v1/write``.

The request is authenticated with an ingest key (``authorization: {credentials: …}`` in
``remote_write``) and stored exactly as a JSON batch is: validated whole, published as one event (a
columnar SampleBlock). Prometheus retries 5xx (and 429 with ``retry_on_http_429``) and
drops a request answered 4xx, so only a full event log or a lagging store answers 5xx/429.
"""

from __future__ import annotations

import hashlib
import time
from typing import Annotated

from fastapi import APIRouter, Header, Request, Response

from services.gateway.common.errors import AUTHENTICATED, problems
from services.gateway.common.routes import Ingest
from services.gateway.common.state import StateDep
from services.gateway.metrics.batch import MalformedBody
from services.gateway.metrics.otlp_http import UnsupportedEncoding
from services.gateway.metrics.remote_write import parse_remote_write
from services.gateway.metrics.router import INGEST_SOURCE, publish_batch, read_limited_body
from shared.events import MAX_BATCH_BYTES, MAX_BATCH_SAMPLES, SampleBlock, derived_id

PROTOBUF = "application/x-protobuf"

router = APIRouter(prefix="/api/v1", tags=["metrics"])


@router.post(
    "/write",
    status_code=204,
    response_class=Response,
    responses={
        **problems(*AUTHENTICATED, 400, 413, 415, 422, 503),
        429: {
            **problems(429)[429],
            "description": "The metrics store or the alerts evaluator is too far behind",
        },
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "description": "A snappy-compressed (block format) protobuf prometheus.WriteRequest "
            f"of at most {MAX_BATCH_SAMPLES} samples and {MAX_BATCH_BYTES} bytes; stored whole "
            "or not at all. NaN values (stale markers) are skipped.",
            "content": {PROTOBUF: {"schema": {"type": "string", "format": "binary"}}},
        }
    },
)
async def remote_write(
    _: Ingest,
    request: Request,
    state: StateDep,
    content_encoding: Annotated[str | None, Header()] = None,
    x_prometheus_remote_write_version: Annotated[str | None, Header()] = None,
) -> Response:
    """Prometheus remote-write 1.0: 204 once every sample in the request is stored."""
    if (content_encoding or "").strip().lower() != "snappy":
        raise UnsupportedEncoding(
            f"Content-Encoding: {content_encoding or 'missing'}; remote write sends snappy",
            field="Content-Encoding",
        )
    version = x_prometheus_remote_write_version or "0.1.0"
    proto = request.headers.get("content-type", "").lower()
    if not version.startswith("0.1.") or "io.prometheus.write.v2" in proto:
        raise UnsupportedEncoding(
            f"X-Prometheus-Remote-Write-Version: {version[:20]}; this receiver speaks "
            "remote write 1.0 (0.1.0, prometheus.WriteRequest)",
            field="X-Prometheus-Remote-Write-Version",
        )
    state.health.refuse_writes()
    state.ingest.check()
    body = await read_limited_body(request)
    if not body:
        raise MalformedBody("body: empty; send a snappy-compressed WriteRequest", field="body")
    received_at = time.time()
    columns = parse_remote_write(body, received_at, state.settings.metrics_retention_s)
    if len(columns.values):
        # Prometheus resends the very same bytes after a 5xx: the same event id lets
        # JetStream drop the copy when the first attempt was stored after all
        block = SampleBlock.of_columns(
            columns.names,
            columns.labels,
            columns.keys,
            columns.series,
            columns.ts_ms,
            columns.values,
            id=derived_id("remote-write", hashlib.sha256(body).hexdigest()),
            aggregate_id=INGEST_SOURCE,
            received_at=received_at,
        )
        await publish_batch(state, block, "the same body")
    return Response(status_code=204)
