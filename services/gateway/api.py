"""The HTTP API: reads from the gateway's read models, commands to the owning services.

Errors are ``{"detail": "<field>: <problem>"}``. Domain errors from any owner map to a
status in one handler; a command's answer waits (a bounded time) until the read model
shows its effect (read-your-writes), then returns the updated read model; if the read
model has not caught up by then, the answer is 202 with the command's result and, in
``Location``, the resource that will show it, never the older state.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

import nats.errors
from fastapi import APIRouter, Body, Depends, FastAPI, Header, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, StreamingResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, TypeAdapter, ValidationError
from sqlalchemy.ext.asyncio import AsyncEngine

from services.gateway import queries
from services.gateway.domain import check_batch_size, parse_label_filter, parse_sample_batch
from services.gateway.health import stream_health
from services.gateway.projections import PROJECTION_BY_STREAM
from services.gateway.schemas import (
    AlertAckUpdate,
    AlertDetailPublic,
    AlertPublic,
    AlertResolveUpdate,
    AlertStatus,
    CheckCreate,
    CheckPublic,
    CheckResultPublic,
    DashboardPublic,
    DeadLetterPublic,
    HealthStatus,
    IncidentAssigneeUpdate,
    IncidentCreate,
    IncidentDetailPublic,
    IncidentNoteCreate,
    IncidentPublic,
    IncidentSeverityUpdate,
    IncidentStatusUpdate,
    LivenessPublic,
    NotificationPublic,
    ProblemPublic,
    ReadinessPublic,
    SampleBatchPublic,
    ServiceHealthPublic,
    SystemHealthPublic,
)
from services.gateway.state import GatewayState
from services.gateway.verdict import overall
from shared import commands, subjects
from shared.commands import CommandResult, parse_command
from shared.errors import NotFound, Overloaded, Unavailable, VigilError
from shared.events import (
    MAX_BATCH_BYTES,
    MAX_BATCH_SAMPLES,
    IncidentSeverity,
    IncidentStatus,
    Sample,
    SamplesIngested,
    Severity,
    new_id,
)

log = logging.getLogger(__name__)

PREFIX = "/api/monitoring"
STATIC_DIR = Path(__file__).parent / "static"
INGEST_SOURCE = "api"
# a stored batch is acknowledged in milliseconds; one that takes longer is answered 503
# soon, so a client retries (same Idempotency-Key) instead of hanging on a full disk
INGEST_PUBLISH_TIMEOUT_S = 1.0
STREAM_FACTS_WAIT_S = 2.0


# --- dependencies ------------------------------------------------------------


def get_state(request: Request) -> GatewayState:
    state: GatewayState = request.app.state.gateway
    return state


StateDep = Annotated[GatewayState, Depends(get_state)]


def get_engine(state: StateDep) -> AsyncEngine:
    return state.store.engine


EngineDep = Annotated[AsyncEngine, Depends(get_engine)]
Limit = Annotated[int, Query(ge=1, le=1000, description="At most this many rows")]


# --- errors --------------------------------------------------------------------


def http_status(exc: VigilError) -> int:
    """The one mapping from domain errors to HTTP. An owner's internal error is the
    gateway's upstream failing (502), never a 500 of the gateway itself."""
    return 502 if exc.http_status >= 500 and not isinstance(exc, Unavailable) else exc.http_status


async def vigil_error_response(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, VigilError)
    status = http_status(exc)
    if status >= 500:
        log.warning(
            "request failed upstream",
            extra={"path": request.url.path, "status": status, "error": exc.message},
        )
    headers = {}
    if isinstance(exc, Overloaded):
        headers["Retry-After"] = str(math.ceil(exc.retry_after_s))
    return JSONResponse({"detail": exc.message}, status_code=status, headers=headers)


async def validation_error_response(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    first = exc.errors()[0]
    loc = [str(part) for part in first.get("loc", ())]
    if loc and loc[0] in ("body", "query", "path", "header"):
        loc = loc[1:] or loc
    field = ".".join(loc) or "body"
    message = str(first.get("msg", "invalid")).removeprefix("Value error, ")
    return JSONResponse({"detail": f"{field}: {message}"}, status_code=422)


# --- talking to the owners ---------------------------------------------------


async def request_owner(state: GatewayState, subject: str, body: BaseModel) -> Any:
    try:
        return await state.bus().request(subject, body.model_dump(mode="json"))
    except nats.errors.Error as exc:
        raise Unavailable(f"could not reach the service answering {subject}: {exc}") from exc


@dataclass(frozen=True)
class CommandOutcome:
    """A command's result, and whether this gateway's read model shows it yet."""

    result: CommandResult
    shown: bool


ACCEPTED: dict[int | str, dict[str, Any]] = {
    202: {
        "model": CommandResult,
        "description": "Done, but the read model does not show it yet: the body is the "
        "command's result (aggregate, stream sequence); the resource in the Location "
        "header shows the change once it has caught up",
        "headers": {
            "Location": {
                "description": "The resource that will show the change",
                "schema": {"type": "string"},
            }
        },
    }
}


async def send_command(state: GatewayState, subject: str, command: BaseModel) -> CommandOutcome:
    """Send a command, then wait (a bounded time) until our read model has applied its
    last event."""
    state.health.refuse_writes()
    reply = await request_owner(state, subject, command)
    try:
        result = CommandResult.model_validate(reply)
    except ValidationError as exc:
        raise VigilError(f"{subject} answered something that is not a command result") from exc
    projection = PROJECTION_BY_STREAM.get(result.stream)
    if result.seq <= 0 or projection is None:
        return CommandOutcome(result, shown=True)
    shown = await state.progress.wait_for(projection.name, result.seq, state.consistency_wait_s)
    if not shown:
        log.info(
            "answered 202: the read model has not applied the command's event yet",
            extra={"projection": projection.name, "stream_seq": result.seq},
        )
    return CommandOutcome(result, shown)


def accepted(result: CommandResult, location: str) -> JSONResponse:
    return JSONResponse(result.model_dump(), status_code=202, headers={"Location": location})


async def updated_view(
    outcome: CommandOutcome,
    load: Callable[[], Awaitable[BaseModel | None]],
    location: str,
    status_code: int = 200,
) -> Any:
    """The read model after a command, once it shows the command's effect; until then
    202 with the command result and where to look."""
    view = await load() if outcome.shown else None
    if view is None:
        return accepted(outcome.result, location)
    if status_code == 201:
        return JSONResponse(
            view.model_dump(mode="json"), status_code=201, headers={"Location": location}
        )
    return view


def resource_path(*parts: str) -> str:
    return "/".join([PREFIX, *(quote(part, safe="") for part in parts)])


# --- metrics -------------------------------------------------------------------

metrics_router = APIRouter(prefix=PREFIX, tags=["metrics"])

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


@metrics_router.post(
    "/metrics",
    status_code=202,
    responses={
        429: {
            "description": "The metrics store or the alerts evaluator is too far behind; "
            "retry after the Retry-After header's seconds"
        }
    },
    openapi_extra={
        "requestBody": {"required": True, "content": {"application/json": {"schema": BATCH_SCHEMA}}}
    },
)
async def ingest_samples(
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
    event = SamplesIngested.of_validated(
        samples,
        id=idempotency_key or new_id(),
        aggregate_id=INGEST_SOURCE,
        received_at=received_at,
    )
    bus = state.bus()
    try:
        seq = await bus.publish(
            subjects.samples(INGEST_SOURCE), event, timeout=INGEST_PUBLISH_TIMEOUT_S
        )
    except (TimeoutError, nats.errors.Error) as exc:
        reason = str(exc) or f"no answer within {INGEST_PUBLISH_TIMEOUT_S:g} s"
        raise Unavailable(
            f"the event log did not store the batch: {reason}; send it again "
            "with the same Idempotency-Key"
        ) from exc
    return SampleBatchPublic(accepted=len(samples), batch_id=event.id, seq=seq)


@metrics_router.get("/metrics/stats")
async def metrics_stats(state: StateDep) -> Any:
    """Samples stored, the store's position in the METRICS stream and the backlog behind it."""
    return await request_owner(state, commands.QUERY_METRICS_STATS, commands.MetricsStats())


@metrics_router.get("/metrics")
async def query_samples(
    state: StateDep,
    name: str | None = None,
    labels: Annotated[
        str | None,
        Query(description='Exact label matches: "k=v,k2=v2" or a JSON object {"k": "v"}'),
    ] = None,
    start: Annotated[float | None, Query(description="Unix seconds, inclusive")] = None,
    end: Annotated[float | None, Query(description="Unix seconds, inclusive")] = None,
    limit: Annotated[int, Query(ge=1, le=100_000)] = 1000,
) -> Any:
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


# --- alerts --------------------------------------------------------------------

alerts_router = APIRouter(prefix=f"{PREFIX}/alerts", tags=["alerts"])


async def load_alert(engine: AsyncEngine, alert_id: str) -> AlertDetailPublic | None:
    row = await queries.get_alert(engine, alert_id)
    return None if row is None else AlertDetailPublic.model_validate(row)


@alerts_router.get("")
async def list_alerts(
    engine: EngineDep,
    status: AlertStatus | None = None,
    severity: Severity | None = None,
    limit: Limit = 100,
) -> list[AlertPublic]:
    rows = await queries.list_alerts(engine, status, severity, limit)
    return [AlertPublic.model_validate(row) for row in rows]


@alerts_router.get("/{alert_id}")
async def get_alert(engine: EngineDep, alert_id: str) -> AlertDetailPublic:
    alert = await load_alert(engine, alert_id)
    if alert is None:
        raise NotFound(f"alert_id: no alert {alert_id!r}", field="alert_id")
    return alert


@alerts_router.post("/{alert_id}/ack", response_model=AlertDetailPublic, responses=ACCEPTED)
async def acknowledge_alert(
    state: StateDep,
    engine: EngineDep,
    alert_id: str,
    body: Annotated[AlertAckUpdate | None, Body()] = None,
) -> Any:
    ack = body or AlertAckUpdate()
    command = parse_command(commands.AcknowledgeAlert, {"alert_id": alert_id, **ack.model_dump()})
    outcome = await send_command(state, commands.ACKNOWLEDGE_ALERT, command)
    return await updated_view(
        outcome, lambda: load_alert(engine, alert_id), resource_path("alerts", alert_id)
    )


@alerts_router.post("/{alert_id}/resolve", response_model=AlertDetailPublic, responses=ACCEPTED)
async def resolve_alert(
    state: StateDep,
    engine: EngineDep,
    alert_id: str,
    body: Annotated[AlertResolveUpdate | None, Body()] = None,
) -> Any:
    resolve = body or AlertResolveUpdate()
    command = parse_command(commands.ResolveAlert, {"alert_id": alert_id, **resolve.model_dump()})
    outcome = await send_command(state, commands.RESOLVE_ALERT, command)
    return await updated_view(
        outcome, lambda: load_alert(engine, alert_id), resource_path("alerts", alert_id)
    )


# --- incidents -----------------------------------------------------------------

incidents_router = APIRouter(prefix=f"{PREFIX}/incidents", tags=["incidents"])


async def load_incident(engine: AsyncEngine, incident_id: str) -> IncidentDetailPublic | None:
    row = await queries.get_incident(engine, incident_id)
    return None if row is None else IncidentDetailPublic.model_validate(row)


@incidents_router.get("")
async def list_incidents(
    engine: EngineDep,
    status: IncidentStatus | None = None,
    severity: IncidentSeverity | None = None,
    limit: Limit = 100,
) -> list[IncidentPublic]:
    rows = await queries.list_incidents(engine, status, severity, limit)
    return [IncidentPublic.model_validate(row) for row in rows]


@incidents_router.post("", status_code=201, response_model=IncidentDetailPublic, responses=ACCEPTED)
async def open_incident(state: StateDep, engine: EngineDep, body: IncidentCreate) -> Any:
    command = parse_command(commands.OpenIncident, body.model_dump())
    outcome = await send_command(state, commands.OPEN_INCIDENT, command)
    incident_id = outcome.result.aggregate_id
    return await updated_view(
        outcome,
        lambda: load_incident(engine, incident_id),
        resource_path("incidents", incident_id),
        status_code=201,
    )


@incidents_router.get("/{incident_id}")
async def get_incident(engine: EngineDep, incident_id: str) -> IncidentDetailPublic:
    incident = await load_incident(engine, incident_id)
    if incident is None:
        raise NotFound(f"incident_id: no incident {incident_id!r}", field="incident_id")
    return incident


async def incident_command(
    state: GatewayState, engine: AsyncEngine, incident_id: str, subject: str, command: BaseModel
) -> Any:
    outcome = await send_command(state, subject, command)
    return await updated_view(
        outcome, lambda: load_incident(engine, incident_id), resource_path("incidents", incident_id)
    )


@incidents_router.put(
    "/{incident_id}/status", response_model=IncidentDetailPublic, responses=ACCEPTED
)
async def change_incident_status(
    state: StateDep, engine: EngineDep, incident_id: str, body: IncidentStatusUpdate
) -> Any:
    command = parse_command(
        commands.ChangeIncidentStatus, {"incident_id": incident_id, **body.model_dump()}
    )
    return await incident_command(
        state, engine, incident_id, commands.CHANGE_INCIDENT_STATUS, command
    )


@incidents_router.post(
    "/{incident_id}/notes",
    status_code=201,
    response_model=IncidentDetailPublic,
    responses=ACCEPTED,
)
async def add_incident_note(
    state: StateDep, engine: EngineDep, incident_id: str, body: IncidentNoteCreate
) -> Any:
    command = parse_command(
        commands.AddIncidentNote, {"incident_id": incident_id, **body.model_dump()}
    )
    outcome = await send_command(state, commands.ADD_INCIDENT_NOTE, command)
    return await updated_view(
        outcome,
        lambda: load_incident(engine, incident_id),
        resource_path("incidents", incident_id),
        status_code=201,
    )


@incidents_router.put(
    "/{incident_id}/assignee", response_model=IncidentDetailPublic, responses=ACCEPTED
)
async def assign_incident(
    state: StateDep, engine: EngineDep, incident_id: str, body: IncidentAssigneeUpdate
) -> Any:
    command = parse_command(
        commands.AssignIncident, {"incident_id": incident_id, **body.model_dump()}
    )
    return await incident_command(state, engine, incident_id, commands.ASSIGN_INCIDENT, command)


@incidents_router.put(
    "/{incident_id}/severity", response_model=IncidentDetailPublic, responses=ACCEPTED
)
async def change_incident_severity(
    state: StateDep, engine: EngineDep, incident_id: str, body: IncidentSeverityUpdate
) -> Any:
    command = parse_command(
        commands.ChangeIncidentSeverity, {"incident_id": incident_id, **body.model_dump()}
    )
    return await incident_command(
        state, engine, incident_id, commands.CHANGE_INCIDENT_SEVERITY, command
    )


# --- synthetic checks ----------------------------------------------------------

synthetic_router = APIRouter(prefix=f"{PREFIX}/synthetic", tags=["synthetic"])


async def load_check(engine: AsyncEngine, check_id: str) -> CheckPublic | None:
    row = await queries.get_check(engine, check_id)
    return None if row is None else CheckPublic.model_validate(row)


@synthetic_router.get("/checks")
async def list_checks(engine: EngineDep) -> list[CheckPublic]:
    return [CheckPublic.model_validate(row) for row in await queries.list_checks(engine)]


@synthetic_router.get("/checks/{check_id}")
async def get_check(engine: EngineDep, check_id: str) -> CheckPublic:
    check = await load_check(engine, check_id)
    if check is None:
        raise NotFound(f"check_id: no check {check_id!r}", field="check_id")
    return check


@synthetic_router.post("/checks", status_code=201, response_model=CheckPublic, responses=ACCEPTED)
async def configure_check(state: StateDep, engine: EngineDep, body: CheckCreate) -> Any:
    command = parse_command(commands.ConfigureCheck, body.model_dump())
    outcome = await send_command(state, commands.CONFIGURE_CHECK, command)
    check_id = outcome.result.aggregate_id
    return await updated_view(
        outcome,
        lambda: load_check(engine, check_id),
        resource_path("synthetic", "checks", check_id),
        status_code=201,
    )


@synthetic_router.post("/checks/{check_id}/run", response_model=CheckPublic, responses=ACCEPTED)
async def run_check(state: StateDep, engine: EngineDep, check_id: str) -> Any:
    command = parse_command(commands.RunCheck, {"check_id": check_id})
    outcome = await send_command(state, commands.RUN_CHECK, command)
    return await updated_view(
        outcome,
        lambda: load_check(engine, check_id),
        resource_path("synthetic", "checks", check_id),
    )


@synthetic_router.delete(
    "/checks/{check_id}",
    status_code=204,
    responses={
        202: {
            **ACCEPTED[202],
            "description": "Removed, but the read model still lists the check: the resource "
            "in the Location header answers 404 once it has caught up",
        }
    },
)
async def remove_check(state: StateDep, check_id: str) -> Response:
    command = parse_command(commands.RemoveCheck, {"check_id": check_id})
    outcome = await send_command(state, commands.REMOVE_CHECK, command)
    if not outcome.shown:
        return accepted(outcome.result, resource_path("synthetic", "checks", check_id))
    return Response(status_code=204)


@synthetic_router.get("/results")
async def list_check_results(
    engine: EngineDep, check_id: str | None = None, limit: Limit = 100
) -> list[CheckResultPublic]:
    rows = await queries.list_check_results(engine, check_id, limit)
    return [CheckResultPublic.model_validate(row) for row in rows]


# --- ledgers -------------------------------------------------------------------

ledger_router = APIRouter(prefix=PREFIX, tags=["ledgers"])


@ledger_router.get("/notifications")
async def list_notifications(
    engine: EngineDep,
    channel: str | None = None,
    status: Annotated[str | None, Query(pattern="^(delivered|failed)$")] = None,
    limit: Limit = 100,
) -> list[NotificationPublic]:
    rows = await queries.list_notifications(engine, channel, status, limit)
    return [NotificationPublic.model_validate(row) for row in rows]


@ledger_router.get("/deadletters")
async def list_dead_letters(
    engine: EngineDep, consumer: str | None = None, limit: Limit = 100
) -> list[DeadLetterPublic]:
    rows = await queries.list_dead_letters(engine, consumer, limit)
    return [DeadLetterPublic.model_validate(row) for row in rows]


# --- health and the live stream ------------------------------------------------

health_router = APIRouter(tags=["health"])


def service_health(state: GatewayState) -> dict[str, ServiceHealthPublic]:
    return {
        status.service: ServiceHealthPublic(
            status="up" if status.up else "down",
            last_seen=None
            if status.last_seen is None
            else datetime.fromtimestamp(status.last_seen, UTC),
            host=status.host,
            pid=status.pid,
            uptime_s=status.uptime_s,
            restarts=status.restarts,
            faults=status.faults,
            disk=status.report.get("disk") if isinstance(status.report.get("disk"), dict) else None,
        )
        for status in state.liveness.status(time.time())
    }


def judged(state: GatewayState) -> tuple[HealthStatus, list[ProblemPublic]]:
    problems = state.health.problems()
    public = [
        ProblemPublic(component=p.component, status=p.status, reason=p.reason) for p in problems
    ]
    return overall(problems), public


@health_router.get(
    "/health",
    responses={503: {"model": LivenessPublic, "description": "Failing: pages may not go out"}},
)
async def liveness(state: StateDep) -> Any:
    """ok, degraded (paging works; an operator is needed) or failing, with the reasons."""
    status, problems = judged(state)
    body = LivenessPublic(status=status, nats_connected=state.connected, problems=problems)
    if body.status == "failing":
        return JSONResponse(body.model_dump(mode="json"), status_code=503)
    return body


@health_router.get(
    "/ready",
    responses={503: {"model": ReadinessPublic, "description": "Writes would not be stored now"}},
)
async def readiness(state: StateDep) -> Any:
    """Ready when a write sent to this gateway now would be stored."""
    status, problems = judged(state)
    reason = state.health.refusal if state.connected else "the gateway is not connected to NATS"
    body = ReadinessPublic(ready=reason is None, reason=reason, status=status, problems=problems)
    if reason is not None:
        return JSONResponse(body.model_dump(mode="json"), status_code=503)
    return body


@health_router.get(f"{PREFIX}/health/system")
async def system_health(state: StateDep) -> SystemHealthPublic:
    """Every service, stream and durable consumer, and what is wrong, with the cause."""
    try:
        streams, consumers = await asyncio.wait_for(
            stream_health(state.bus(), state.health.stalls), STREAM_FACTS_WAIT_S
        )
    except (TimeoutError, VigilError, nats.errors.Error) as exc:
        log.warning("stream health unavailable", extra={"error": str(exc)})
        streams, consumers = state.health.streams, state.health.consumers  # the last known
    status, problems = judged(state)
    return SystemHealthPublic(
        status=status,
        problems=problems,
        services=service_health(state),
        streams=streams,
        consumers=consumers,
    )


@health_router.get(f"{PREFIX}/health/dashboard")
async def dashboard(state: StateDep, engine: EngineDep) -> DashboardPublic:
    counts = await queries.dashboard_counts(engine)
    return DashboardPublic.model_validate({**counts, "services": service_health(state)})


async def live_events(state: GatewayState) -> AsyncIterator[bytes]:
    subscriber = state.live.subscribe()
    try:
        yield b"retry: 2000\n: connected\n\n"
        while True:
            try:
                item = await subscriber.next(state.keepalive_s)
            except TimeoutError:
                yield b": keep-alive\n\n"
                continue
            if item is None:
                return
            yield item.sse()
    finally:
        state.live.unsubscribe(subscriber)


@health_router.get(
    f"{PREFIX}/events",
    response_class=StreamingResponse,
    responses={
        200: {"content": {"text/event-stream": {}}},
        429: {"description": "As many live clients as the gateway takes are connected"},
    },
)
async def event_stream(state: StateDep) -> StreamingResponse:
    """Every projected event as it is applied (server-sent events, keep-alive every 15 s)."""
    if state.live.full:
        raise Overloaded(
            f"{state.live.max_clients} live-stream clients are connected; retry later",
            retry_after_s=30.0,
        )
    return StreamingResponse(
        live_events(state),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


# --- the app -------------------------------------------------------------------


def create_app(state: GatewayState) -> FastAPI:
    app = FastAPI(
        title="Vigil",
        description="Monitoring, alerting and incident management on an event log",
        version="0.1.0",
        docs_url="/docs",
    )
    app.state.gateway = state
    app.add_exception_handler(VigilError, vigil_error_response)
    app.add_exception_handler(RequestValidationError, validation_error_response)
    for router in (
        metrics_router,
        alerts_router,
        incidents_router,
        synthetic_router,
        ledger_router,
        health_router,
    ):
        app.include_router(router)

    @app.get("/", include_in_schema=False)
    async def dashboard_page() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html")

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    return app
