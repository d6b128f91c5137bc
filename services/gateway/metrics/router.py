"""Sample ingest and queries to the metrics store."""

from __future__ import annotations

import math
import time
from typing import Annotated, Any

import nats.errors
from fastapi import APIRouter, Header, Query, Request
from pydantic import TypeAdapter

from services.gateway.common.errors import AUTHENTICATED, problems
from services.gateway.common.owners import request_owner
from services.gateway.common.paths import PREFIX
from services.gateway.common.routes import Ingest, Viewer
from services.gateway.common.state import GatewayState, StateDep
from services.gateway.metrics.batch import check_batch_size, parse_label_filter, parse_sample_batch
from services.gateway.metrics.schemas import SampleBatchPublic
from shared import commands, subjects
from shared.commands import parse_command
from shared.errors import InvalidInput, Unavailable
from shared.events import (
    MAX_BATCH_BYTES,
    MAX_BATCH_SAMPLES,
    Sample,
    SampleBatch,
    SamplesIngested,
    new_id,
)

INGEST_SOURCE = "api"
# a stored batch is acknowledged in milliseconds; one that takes longer is answered 503
# soon, so a client retries (same Idempotency-Key) instead of hanging on a full disk
INGEST_PUBLISH_TIMEOUT_S = 1.0

# an aggregated query without start: the last hour; without step: about this many points
DEFAULT_CHART_WINDOW_S = 3600.0
CHART_POINTS = 300

router = APIRouter(prefix=PREFIX, tags=["metrics"])

BATCH_SCHEMA = {
    "type": "array",
    "items": TypeAdapter(Sample).json_schema(),
    "minItems": 1,
    "maxItems": MAX_BATCH_SAMPLES,
    "description": f"Up to {MAX_BATCH_SAMPLES} samples and {MAX_BATCH_BYTES} bytes; "
    "accepted whole or not at all",
}


async def read_limited_body(request: Request) -> bytes:
    """The raw body, refused as soon as it passes the batch size limit."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit():
        check_batch_size(int(declared))
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        check_batch_size(size)
        chunks.append(chunk)
    return b"".join(chunks)


@router.post(
    "/metrics",
    status_code=202,
    responses={
        **problems(*AUTHENTICATED, 400, 413, 415, 422, 503),
        429: {
            **problems(429)[429],
            "description": "The metrics store or the alerts evaluator is too far behind; "
            "retry after the Retry-After header's seconds",
        },
    },
    openapi_extra={
        "requestBody": {"required": True, "content": {"application/json": {"schema": BATCH_SCHEMA}}}
    },
)
async def ingest_samples(
    _: Ingest,
    request: Request,
    state: StateDep,
    idempotency_key: Annotated[
        str | None,
        Header(
            min_length=1,
            max_length=200,
            description="Becomes the batch's event id: a retried POST is stored once "
            "(within the stream's 2 minute duplicate window)",
        ),
    ] = None,
) -> SampleBatchPublic:
    state.health.refuse_writes()
    state.ingest.check()
    body = await read_limited_body(request)
    received_at = time.time()
    samples = parse_sample_batch(body, received_at, state.settings.metrics_retention_s)
    event_id = idempotency_key or new_id()
    seq = await publish_samples(state, samples, event_id, received_at, "the same Idempotency-Key")
    return SampleBatchPublic(accepted=len(samples), batch_id=event_id, seq=seq)


async def publish_samples(
    state: GatewayState, samples: list[Sample], event_id: str, received_at: float, retry: str
) -> int:
    """Store validated samples as one SamplesIngested event; its METRICS sequence."""
    event = SamplesIngested.of_validated(
        samples, id=event_id, aggregate_id=INGEST_SOURCE, received_at=received_at
    )
    return await publish_batch(state, event, retry)


async def publish_batch(state: GatewayState, event: SampleBatch, retry: str) -> int:
    """Store one validated batch; its METRICS sequence, or 503 saying how to retry."""
    try:
        return await state.bus().publish(
            subjects.samples(INGEST_SOURCE), event, timeout=INGEST_PUBLISH_TIMEOUT_S
        )
    except (TimeoutError, nats.errors.Error) as exc:
        reason = str(exc) or f"no answer within {INGEST_PUBLISH_TIMEOUT_S:g} s"
        raise Unavailable(
            f"the event log did not store the batch: {reason}; send it again with {retry}"
        ) from exc


@router.get("/metrics/stats", responses=problems(*AUTHENTICATED, 502, 503))
async def metrics_stats(_: Viewer, state: StateDep) -> Any:
    """Samples stored, the store's position in the METRICS stream and the backlog behind it."""
    return await request_owner(state, commands.QUERY_METRICS_STATS, commands.MetricsStats())


@router.get("/metrics", responses=problems(*AUTHENTICATED, 422, 502, 503))
async def query_samples(
    _: Viewer,
    state: StateDep,
    name: str | None = None,
    labels: Annotated[
        str | None,
        Query(description='Exact label matches: "k=v,k2=v2" or a JSON object {"k": "v"}'),
    ] = None,
    start: Annotated[float | None, Query(description="Unix seconds, inclusive")] = None,
    end: Annotated[float | None, Query(description="Unix seconds, inclusive")] = None,
    limit: Annotated[int, Query(ge=1, le=100_000)] = 1000,
    step: Annotated[
        float | None,
        Query(
            gt=0,
            description="Seconds per point: with it (or aggregation, or by) the answer is one "
            'aggregated point per step and group, {"series": [{"labels", "points": '
            "[[ts, value]]}]}, instead of raw samples",
        ),
    ] = None,
    aggregation: Annotated[
        commands.Aggregation | None,
        Query(description="How a step's samples become its point (default avg)"),
    ] = None,
    by: Annotated[
        str | None,
        Query(description="Comma-separated labels to group by (default: all series in one)"),
    ] = None,
) -> Any:
    """Raw samples, newest ``limit`` of them; or, with ``step``, ``aggregation`` or ``by``,
    one point per step and group between ``start`` (default an hour before ``end``) and
    ``end`` (default now), ``step`` defaulting to a 300th of that window."""
    if step is None and aggregation is None and by is None:
        query = parse_command(
            commands.QuerySamples,
            {
                "name": name,
                "labels": parse_label_filter(labels),
                "start": start,
                "end": end,
                "limit": limit,
            },
        )
        return await request_owner(state, commands.QUERY_SAMPLES, query)
    if not name:
        raise InvalidInput("name: an aggregated query needs the metric's name", field="name")
    until = end if end is not None else time.time()
    since = start if start is not None else until - DEFAULT_CHART_WINDOW_S
    aggregate = parse_command(
        commands.AggregateSamples,
        {
            "name": name,
            "labels": parse_label_filter(labels),
            "start": since,
            "end": until,
            "step": step if step is not None else chart_step(since, until),
            "aggregation": aggregation or "avg",
            "by": [part.strip() for part in (by or "").split(",") if part.strip()],
        },
    )
    reply = await request_owner(state, commands.AGGREGATE_SAMPLES, aggregate, timeout=30.0)
    return {
        "start": aggregate.start,
        "end": aggregate.end,
        "step": aggregate.step,
        "aggregation": aggregate.aggregation,
        "by": aggregate.by,
        **reply,
    }


def chart_step(start: float, end: float) -> float:
    """About 300 points over the window, in whole seconds."""
    return float(max(1, math.ceil((end - start) / CHART_POINTS)))
