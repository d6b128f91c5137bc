"""Alerts: read from the read model; acknowledge and resolve sent to the alerts service."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Query
from sqlalchemy.ext.asyncio import AsyncEngine

from services.gateway.alerts import queries
from services.gateway.alerts.explain import explain_alert
from services.gateway.alerts.schemas import (
    AlertAckUpdate,
    AlertDetailPublic,
    AlertExplanationPublic,
    AlertPublic,
    AlertResolveUpdate,
    AlertStatus,
)
from services.gateway.common.errors import COMMAND, READ, READ_ONE
from services.gateway.common.owners import ACCEPTED, send_command, updated_view
from services.gateway.common.pagination import Page, PageParams
from services.gateway.common.paths import PREFIX, resource_path
from services.gateway.common.routes import Responder, Viewer
from services.gateway.common.state import EngineDep, StateDep
from shared import commands
from shared.commands import parse_command
from shared.errors import NotFound
from shared.events import Severity

router = APIRouter(prefix=f"{PREFIX}/alerts", tags=["alerts"])


async def explanation(engine: AsyncEngine, alert_id: str) -> AlertExplanationPublic | None:
    row = await queries.get_alert(engine, alert_id)
    if row is None:
        return None
    return AlertExplanationPublic.model_validate(explain_alert(row, row["timeline"]))


async def load_alert(engine: AsyncEngine, alert_id: str) -> AlertDetailPublic | None:
    row = await queries.get_alert(engine, alert_id)
    return None if row is None else AlertDetailPublic.model_validate(row)


@router.get("", responses=READ)
async def list_alerts(
    _: Viewer,
    engine: EngineDep,
    page: PageParams,
    status: AlertStatus | None = None,
    severity: Severity | None = None,
    suppressed: Annotated[
        bool | None, Query(description="Only alerts that page nobody (true) or that page")
    ] = None,
    silenced: Annotated[
        bool | None, Query(description="Only alerts a silence keeps quiet (true) or not")
    ] = None,
) -> Page[AlertPublic]:
    """Newest first; ``suppressed_by`` says why an alert pages nobody."""
    rows, next_cursor = await queries.list_alerts(
        engine, status, severity, page, suppressed=suppressed, silenced=silenced
    )
    return Page(items=[AlertPublic.model_validate(row) for row in rows], next_cursor=next_cursor)


@router.get("/{alert_id}", responses=READ_ONE)
async def get_alert(_: Viewer, engine: EngineDep, alert_id: str) -> AlertDetailPublic:
    alert = await load_alert(engine, alert_id)
    if alert is None:
        raise NotFound(f"alert_id: no alert {alert_id!r}", field="alert_id")
    return alert


@router.get("/{alert_id}/explain", responses=READ_ONE)
async def explain(_: Viewer, engine: EngineDep, alert_id: str) -> AlertExplanationPublic:
    """Why the alert paged or did not: the rule and sample that fired it, every silence,
    inhibition, maintenance window or flapping that kept it quiet, its escalation steps
    and deliveries, in time order, and a one-line verdict."""
    found = await explanation(engine, alert_id)
    if found is None:
        raise NotFound(f"alert_id: no alert {alert_id!r}", field="alert_id")
    return found


@router.post("/{alert_id}/ack", response_model=AlertDetailPublic, responses={**ACCEPTED, **COMMAND})
async def acknowledge_alert(
    identity: Responder,
    state: StateDep,
    engine: EngineDep,
    alert_id: str,
    body: Annotated[AlertAckUpdate | None, Body()] = None,
) -> Any:
    ack = body or AlertAckUpdate()
    command = parse_command(
        commands.AcknowledgeAlert,
        {"alert_id": alert_id, "by": identity.actor, "comment": ack.comment},
    )
    outcome = await send_command(state, commands.ACKNOWLEDGE_ALERT, command)
    return await updated_view(
        outcome, lambda: load_alert(engine, alert_id), resource_path("alerts", alert_id)
    )


@router.post(
    "/{alert_id}/resolve", response_model=AlertDetailPublic, responses={**ACCEPTED, **COMMAND}
)
async def resolve_alert(
    identity: Responder,
    state: StateDep,
    engine: EngineDep,
    alert_id: str,
    body: Annotated[AlertResolveUpdate | None, Body()] = None,
) -> Any:
    command = parse_command(commands.ResolveAlert, {"alert_id": alert_id, "by": identity.actor})
    outcome = await send_command(state, commands.RESOLVE_ALERT, command)
    return await updated_view(
        outcome, lambda: load_alert(engine, alert_id), resource_path("alerts", alert_id)
    )
