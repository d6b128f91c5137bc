"""Log ingest, and search and counts from the log store (the metrics service answers)."""

from __future__ import annotations

import math
import time
from datetime import datetime
from typing import Annotated, Any

import nats.errors
from fastapi import APIRouter, Header, Query, Request
from pydantic import TypeAdapter

from services.gateway.common.errors import AUTHENTICATED, problems
from services.gateway.common.owners import request_owner
from services.gateway.common.paths import PREFIX
from services.gateway.common.routes import Ingest, Viewer
from services.gateway.common.state import GatewayState, StateDep
from services.gateway.logs.batch import (
    LEVEL_ALIASES,
    parse_levels,
    parse_log_batch,
    parse_names,
)
from services.gateway.logs.schemas import LogBatchPublic, LogHistogramPublic, LogPagePublic
from services.gateway.metrics.batch import parse_label_filter
from services.gateway.metrics.router import read_limited_body
from shared import commands, subjects
from shared.commands import MAX_LOG_PAGE, parse_command
from shared.errors import InvalidInput, Unavailable
from shared.events import LogEntry, LogsIngested, new_id
from shared.events.logs import LEVELS, MAX_BATCH_BYTES, MAX_BATCH_ENTRIES
from shared.logquery import parse_query

INGEST_SOURCE = "api"
INGEST_PUBLISH_TIMEOUT_S = 1.0
HISTOGRAM_BUCKETS = 120  # without step: about this many buckets
DEFAULT_HISTOGRAM_WINDOW_S = 3600.0
QUERY_TIMEOUT_S = 30.0

router = APIRouter(prefix=PREFIX, tags=["logs"])


def entry_schema() -> dict[str, Any]:
    """The stored entry's schema, widened to what ingest takes and normalises: any case
    of hex in the ids, and level names as other systems spell them."""
    schema = TypeAdapter(LogEntry).json_schema()
    properties = schema["properties"]
    properties["level"] = {
        "anyOf": [{"type": "string"}, {"type": "null"}],
        "default": "info",
        "description": f"One of {', '.join(LEVELS)}, in any case, or a common alias: "
        + ", ".join(sorted(alias for alias in LEVEL_ALIASES if alias not in LEVELS)),
    }
    for name, digits in (("trace_id", 32), ("span_id", 16)):
        properties[name] = {
            "anyOf": [
                {"type": "string", "pattern": f"^[0-9a-fA-F]{{{digits}}}$"},
                {"type": "null"},
            ],
            "default": None,
        }
    return schema


ENTRY_SCHEMA = entry_schema()
BATCH_SCHEMA = {
    "oneOf": [
        ENTRY_SCHEMA,
        # no maxItems: 10,001 entries pass the byte limit first (413) whenever their
        # messages are long, so the count is stated in words only
        {"type": "array", "items": ENTRY_SCHEMA, "minItems": 1},
    ],
    "description": f"One entry, or up to {MAX_BATCH_ENTRIES} entries and {MAX_BATCH_BYTES} "
    "bytes; accepted whole or not at all. level takes common aliases (warning, critical, "
    "err, information, ...)",
}

TIME_HELP = "Unix seconds or an RFC 3339 date-time"
Q_HELP = (
    'Text: words (all must match), "quoted phrases", AND, OR, NOT, -word, parentheses; '
    "whole words, case-insensitive"
)


@router.post(
    "/logs",
    status_code=202,
    responses={
        **problems(*AUTHENTICATED, 400, 413, 415, 422, 503),
        429: {
            **problems(429)[429],
            "description": "The log store is too far behind; retry after the Retry-After "
            "header's seconds",
        },
    },
    openapi_extra={
        "requestBody": {"required": True, "content": {"application/json": {"schema": BATCH_SCHEMA}}}
    },
)
async def ingest_logs(
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
) -> LogBatchPublic:
    """Store log lines: one entry or an array, whole or not at all."""
    state.health.refuse_writes()
    state.log_ingest.check()
    body = await read_limited_body(request)
    received_at = time.time()
    entries = parse_log_batch(body, received_at, state.settings.longest_log_retention_s)
    event_id = idempotency_key or new_id()
    seq = await publish_logs(state, entries, event_id, received_at)
    return LogBatchPublic(accepted=len(entries), batch_id=event_id, seq=seq)


async def publish_logs(
    state: GatewayState,
    entries: list[LogEntry],
    event_id: str,
    received_at: float,
    source: str = INGEST_SOURCE,
) -> int:
    event = LogsIngested.of_validated(
        entries, id=event_id, aggregate_id=source, received_at=received_at
    )
    try:
        return await state.bus().publish(
            subjects.log_entries(source), event, timeout=INGEST_PUBLISH_TIMEOUT_S
        )
    except (TimeoutError, nats.errors.Error) as exc:
        reason = str(exc) or f"no answer within {INGEST_PUBLISH_TIMEOUT_S:g} s"
        raise Unavailable(
            f"the event log did not store the batch: {reason}; send it again with the same "
            "Idempotency-Key"
        ) from exc


def parse_time(value: str | None, field: str) -> float | None:
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        number = float(text)
    except ValueError:
        try:
            return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
        except ValueError:
            raise InvalidInput(
                f"{field}: {text[:40]!r} is neither Unix seconds nor an RFC 3339 date-time",
                field=field,
            ) from None
    if not math.isfinite(number):
        raise InvalidInput(f"{field}: must be a finite number", field=field)
    return number


def log_filter(
    start: str | None,
    end: str | None,
    level: str | None,
    service: str | None,
    labels: str | None,
    q: str | None,
) -> dict[str, Any]:
    """The shared filter, checked here so a bad parameter is named before the store is asked."""
    since, until = parse_time(start, "start"), parse_time(end, "end")
    if since is not None and until is not None and until <= since:
        raise InvalidInput("end: must be after start", field="end")
    parse_query(q or "")  # a malformed query is answered here, naming q
    return {
        "start": since,
        "end": until,
        "levels": parse_levels(level),
        "services": parse_names(service),
        "labels": parse_label_filter(labels),
        "q": q or "",
    }


Start = Annotated[str | None, Query(description=f"{TIME_HELP}, inclusive")]
End = Annotated[str | None, Query(description=f"{TIME_HELP}, exclusive")]
LevelParam = Annotated[str | None, Query(description="Comma-separated levels (any of them)")]
ServiceParam = Annotated[str | None, Query(description="Comma-separated services (any of them)")]
LabelsParam = Annotated[
    str | None, Query(description='Exact label matches: "k=v,k2=v2" or a JSON object')
]
TextParam = Annotated[
    str | None, Query(max_length=commands.MAX_LOG_QUERY_CHARS, description=Q_HELP)
]


@router.get("/logs", responses=problems(*AUTHENTICATED, 422, 502, 503))
async def search_logs(
    _: Viewer,
    state: StateDep,
    start: Start = None,
    end: End = None,
    level: LevelParam = None,
    service: ServiceParam = None,
    labels: LabelsParam = None,
    q: TextParam = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LOG_PAGE)] = 100,
    cursor: Annotated[
        str | None, Query(max_length=64, description="next_cursor of the previous page")
    ] = None,
) -> LogPagePublic:
    """Log lines matching every filter, newest first, a page at a time."""
    query = parse_command(
        commands.SearchLogs,
        {**log_filter(start, end, level, service, labels, q), "limit": limit, "cursor": cursor},
    )
    reply = await request_owner(state, commands.SEARCH_LOGS, query, timeout=QUERY_TIMEOUT_S)
    return LogPagePublic.model_validate(reply)


@router.get("/logs/histogram", responses=problems(*AUTHENTICATED, 422, 502, 503))
async def log_histogram(
    _: Viewer,
    state: StateDep,
    start: Annotated[
        str | None, Query(description=f"{TIME_HELP}; default an hour before end")
    ] = None,
    end: Annotated[str | None, Query(description=f"{TIME_HELP}; default now")] = None,
    level: LevelParam = None,
    service: ServiceParam = None,
    labels: LabelsParam = None,
    q: TextParam = None,
    step: Annotated[
        float | None,
        Query(ge=0.001, description="Seconds per bucket; default about 120 buckets"),
    ] = None,
) -> LogHistogramPublic:
    """Matching lines per level in each step of the window, for a histogram."""
    body = log_filter(start, end, level, service, labels, q)
    until = body["end"] if body["end"] is not None else time.time()
    since = body["start"] if body["start"] is not None else until - DEFAULT_HISTOGRAM_WINDOW_S
    if until <= since:
        raise InvalidInput("end: must be after start", field="end")
    every = (
        step if step is not None else float(max(1, math.ceil((until - since) / HISTOGRAM_BUCKETS)))
    )
    commands.check_log_buckets(since, until, every)
    query = parse_command(
        commands.LogHistogram, {**body, "start": since, "end": until, "step": every}
    )
    reply = await request_owner(state, commands.LOG_HISTOGRAM, query, timeout=QUERY_TIMEOUT_S)
    return LogHistogramPublic.model_validate(reply)
