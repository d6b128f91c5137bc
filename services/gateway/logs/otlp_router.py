"""OTLP/HTTP logs receiver at ``POST /v1/logs`` (an exporter's default path under its
endpoint) and ``POST /api/v1/otlp/v1/logs``.

As the metrics receiver: authenticated with an ingest key, the request mapped whole
(``services/gateway/logs/otlp.py``) and published as one LogsIngested event; 200 with an
ExportLogsServiceResponse in the request's encoding (``partial_success`` counts the
records not stored), errors as a ``google.rpc.Status``. Exporters retry 429, 502, 503 and
504 with the very same bytes, so the event id is derived from them.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from typing import Annotated

from fastapi import APIRouter, Header, Request, Response

from services.gateway.common.routes import Ingest
from services.gateway.common.state import StateDep
from services.gateway.logs.otlp import export_response, parse_log_export
from services.gateway.logs.router import publish_logs
from services.gateway.metrics.otlp import PROTOBUF
from services.gateway.metrics.otlp_http import (
    REQUEST_CONTENT,
    gzipped,
    otlp_responses,
    status_response,
)
from services.gateway.metrics.router import read_limited_body
from services.gateway.surface.content_types import media_type
from shared.errors import VigilError
from shared.events import derived_id
from shared.events.logs import MAX_BATCH_BYTES, MAX_BATCH_ENTRIES

PATHS = ("/v1/logs", "/api/v1/otlp/v1/logs")
OTLP_SOURCE = "otlp"

router = APIRouter(tags=["logs"])


async def otlp_logs(
    _: Ingest,
    request: Request,
    state: StateDep,
    content_encoding: Annotated[str | None, Header()] = None,
) -> Response:
    """OTLP/HTTP logs export: 200 once every mappable record in the request is stored."""
    media = media_type(request.headers.get("content-type", "")) or PROTOBUF
    try:
        gzip = gzipped(content_encoding)
        state.health.refuse_writes()
        state.log_ingest.check()
        body = await read_limited_body(request)
        received_at = time.time()
        export = await asyncio.to_thread(
            parse_log_export,
            body,
            media,
            gzip,
            received_at,
            state.settings.longest_log_retention_s,
        )
        if export.entries:
            event_id = derived_id("otlp-logs", media, hashlib.sha256(body).hexdigest())
            await publish_logs(state, export.entries, event_id, received_at, OTLP_SOURCE)
    except VigilError as exc:
        return status_response(exc, media)
    return Response(export_response(export, media), media_type=media)


_DESCRIPTION = (
    "An OTLP ExportLogsServiceRequest, protobuf or OTLP JSON, optionally gzip "
    f"(Content-Encoding), of at most {MAX_BATCH_BYTES} bytes and {MAX_BATCH_ENTRIES} "
    "log records. Body → message, severity → level, resource service.name → service, "
    "string attributes → labels, other attributes → fields; the answer's partial_success "
    "counts the records not stored (neither body nor event name)."
)
for _path in PATHS:
    router.add_api_route(
        _path,
        otlp_logs,
        methods=["POST"],
        status_code=200,
        response_class=Response,
        summary="OTLP/HTTP logs export",
        responses=otlp_responses("The log store is too far behind", "ExportLogsServiceResponse"),
        openapi_extra={
            "requestBody": {
                "required": False,
                "description": _DESCRIPTION,
                "content": REQUEST_CONTENT,
            }
        },
        operation_id=f"otlp_logs_{'prometheus' if _path.startswith('/api') else 'default'}",
    )
