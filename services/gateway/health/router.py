"""Liveness, readiness, the system's health and the overview's counts."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from datetime import UTC, datetime
from typing import Any

import nats.errors
from fastapi import APIRouter
from fastapi.responses import JSONResponse

from services.gateway.common.errors import AUTHENTICATED, problems
from services.gateway.common.paths import PREFIX
from services.gateway.common.routes import PUBLIC, Viewer
from services.gateway.common.state import EngineDep, GatewayState, StateDep
from services.gateway.health import components, queries
from services.gateway.health.monitor import stream_health
from services.gateway.health.schemas import (
    ConsumerHealthPublic,
    DashboardPublic,
    HealthChecksPublic,
    HealthStatus,
    LivenessPublic,
    ProblemPublic,
    ReadinessPublic,
    ServiceHealthPublic,
    StreamHealthPublic,
    SystemHealthPublic,
)
from services.gateway.health.verdict import overall
from shared.bus import EventBus
from shared.errors import VigilError
from shared.faults import disk_state

log = logging.getLogger(__name__)

STREAM_FACTS_WAIT_S = 2.0

router = APIRouter(tags=["health"])


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


@router.get(
    "/health",
    responses={503: {"model": LivenessPublic, "description": "Failing: pages may not go out"}},
    openapi_extra=PUBLIC,
)
async def liveness(state: StateDep) -> Any:
    """ok, degraded (paging works; an operator is needed) or failing, with the reasons."""
    status, problems = judged(state)
    body = LivenessPublic(status=status, nats_connected=state.connected, problems=problems)
    if body.status == "failing":
        return JSONResponse(body.model_dump(mode="json"), status_code=503)
    return body


@router.get(
    "/ready",
    responses={503: {"model": ReadinessPublic, "description": "Writes would not be stored now"}},
    openapi_extra=PUBLIC,
)
async def readiness(state: StateDep) -> Any:
    """Ready when a write sent to this gateway now would be stored."""
    status, problems = judged(state)
    reason = state.health.refusal if state.connected else "the gateway is not connected to NATS"
    body = ReadinessPublic(ready=reason is None, reason=reason, status=status, problems=problems)
    if reason is not None:
        return JSONResponse(body.model_dump(mode="json"), status_code=503)
    return body


async def stream_facts(
    state: GatewayState,
) -> tuple[list[StreamHealthPublic], list[ConsumerHealthPublic]]:
    """Fresh stream and consumer figures; the last known when NATS does not answer."""
    try:
        return await asyncio.wait_for(
            stream_health(state.bus(), state.health.stalls), STREAM_FACTS_WAIT_S
        )
    except (TimeoutError, VigilError, nats.errors.Error) as exc:
        log.warning("stream health unavailable", extra={"error": str(exc)})
        return state.health.streams, state.health.consumers


@router.get(f"{PREFIX}/health/system", responses=problems(*AUTHENTICATED))
async def system_health(_: Viewer, state: StateDep) -> SystemHealthPublic:
    """Every service, stream and durable consumer, and what is wrong, with the cause."""
    streams, consumers = await stream_facts(state)
    status, problems = judged(state)
    return SystemHealthPublic(
        status=status,
        problems=problems,
        services=service_health(state),
        streams=streams,
        consumers=consumers,
    )


@router.get(f"{PREFIX}/health/dashboard", responses=problems(*AUTHENTICATED))
async def dashboard(_: Viewer, state: StateDep, engine: EngineDep) -> DashboardPublic:
    counts = await queries.dashboard_counts(engine)
    return DashboardPublic.model_validate({**counts, "services": service_health(state)})


@router.get(f"{PREFIX}/health/checks", responses=problems(*AUTHENTICATED))
async def component_health(_: Viewer, state: StateDep, engine: EngineDep) -> HealthChecksPublic:
    """Each component with its status and why: NATS and JetStream storage, each
    service's database, each durable consumer's lag, the data dir's disk, the checks."""
    bus: EventBus | None = None
    with contextlib.suppress(VigilError):
        bus = state.bus()
    disk = disk_state(state.settings.data_dir)
    consumers = (await stream_facts(state))[1]
    limits = state.health.limits
    found = [
        await components.nats_component(
            bus, state.health.probe_error, disk.free_bytes if disk else None
        ),
        *components.database_components(state.liveness.status(time.time())),
        *components.consumer_components(consumers, limits),
        components.disk_component(state.settings, limits),
        components.synthetic_component(await queries.check_summary(engine)),
    ]
    return HealthChecksPublic(status=components.worst(found), components=found)
