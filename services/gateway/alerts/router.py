"""Alerts: read from the read model; acknowledge and resolve sent to the alerts service."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body
from sqlalchemy.ext.asyncio import AsyncEngine

from services.gateway.alerts import queries
from services.gateway.alerts.schemas import (
    AlertAckUpdate,
    AlertDetailPublic,
    AlertPublic,
    AlertResolveUpdate,
    AlertStatus,
)
from services.gateway.common.owners import ACCEPTED, send_command, updated_view
from services.gateway.common.pagination import Limit
from services.gateway.common.paths import PREFIX, resource_path
from services.gateway.common.state import EngineDep, StateDep
from shared import commands
from shared.commands import parse_command
from shared.errors import NotFound
from shared.events import Severity

router = APIRouter(prefix=f"{PREFIX}/alerts", tags=["alerts"])


async def load_alert(engine: AsyncEngine, alert_id: str) -> AlertDetailPublic | None:
    row = await queries.get_alert(engine, alert_id)
    return None if row is None else AlertDetailPublic.model_validate(row)


@router.get("")
async def list_alerts(
    engine: EngineDep,
    status: AlertStatus | None = None,
    severity: Severity | None = None,
    limit: Limit = 100,
) -> list[AlertPublic]:
    rows = await queries.list_alerts(engine, status, severity, limit)
    return [AlertPublic.model_validate(row) for row in rows]


@router.get("/{alert_id}")
async def get_alert(engine: EngineDep, alert_id: str) -> AlertDetailPublic:
    alert = await load_alert(engine, alert_id)
    if alert is None:
        raise NotFound(f"alert_id: no alert {alert_id!r}", field="alert_id")
    return alert


@router.post("/{alert_id}/ack", response_model=AlertDetailPublic, responses=ACCEPTED)
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


@router.post("/{alert_id}/resolve", response_model=AlertDetailPublic, responses=ACCEPTED)
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
