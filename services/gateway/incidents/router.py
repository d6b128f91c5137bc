"""Incidents: read from the read model; changes sent to the incidents service."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncEngine

from services.gateway.common.errors import AUTHENTICATED, COMMAND, READ, READ_ONE, problems
from services.gateway.common.owners import ACCEPTED, request_owner, send_command, updated_view
from services.gateway.common.pagination import Page, PageParams
from services.gateway.common.paths import PREFIX, resource_path
from services.gateway.common.routes import Responder, Viewer
from services.gateway.common.state import EngineDep, GatewayState, StateDep
from services.gateway.incidents import queries
from services.gateway.incidents.logs import (
    IncidentLogsPublic,
    incident_log_filter,
    parse_before,
)
from services.gateway.incidents.schemas import (
    IncidentAssigneeUpdate,
    IncidentCreate,
    IncidentDetailPublic,
    IncidentNoteCreate,
    IncidentPublic,
    IncidentSeverityUpdate,
    IncidentStatusUpdate,
)
from shared import commands
from shared.commands import MAX_LOG_PAGE, parse_command
from shared.errors import NotFound
from shared.events import IncidentSeverity, IncidentStatus

router = APIRouter(prefix=f"{PREFIX}/incidents", tags=["incidents"])
CHANGE = {**ACCEPTED, **COMMAND}


async def load_incident(engine: AsyncEngine, incident_id: str) -> IncidentDetailPublic | None:
    row = await queries.get_incident(engine, incident_id)
    return None if row is None else IncidentDetailPublic.model_validate(row)


@router.get("", responses=READ)
async def list_incidents(
    _: Viewer,
    engine: EngineDep,
    page: PageParams,
    status: IncidentStatus | None = None,
    severity: IncidentSeverity | None = None,
) -> Page[IncidentPublic]:
    """Newest first."""
    rows, next_cursor = await queries.list_incidents(engine, status, severity, page)
    return Page(items=[IncidentPublic.model_validate(row) for row in rows], next_cursor=next_cursor)


@router.post("", status_code=201, response_model=IncidentDetailPublic, responses=CHANGE)
async def open_incident(
    identity: Responder, state: StateDep, engine: EngineDep, body: IncidentCreate
) -> Any:
    command = parse_command(commands.OpenIncident, {**body.model_dump(), "by": identity.actor})
    outcome = await send_command(state, commands.OPEN_INCIDENT, command)
    incident_id = outcome.result.aggregate_id
    return await updated_view(
        outcome,
        lambda: load_incident(engine, incident_id),
        resource_path("incidents", incident_id),
        status_code=201,
    )


@router.get("/{incident_id}", responses=READ_ONE)
async def get_incident(_: Viewer, engine: EngineDep, incident_id: str) -> IncidentDetailPublic:
    incident = await load_incident(engine, incident_id)
    if incident is None:
        raise NotFound(f"incident_id: no incident {incident_id!r}", field="incident_id")
    return incident


LOG_QUERY_TIMEOUT_S = 30.0


@router.get("/{incident_id}/logs", responses=problems(*AUTHENTICATED, 404, 422, 502, 503))
async def incident_logs(
    _: Viewer,
    state: StateDep,
    engine: EngineDep,
    incident_id: str,
    before: Annotated[
        str | None,
        Query(max_length=20, description="How long before it opened: 15m (default), 1h, 90s"),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LOG_PAGE)] = 100,
    cursor: Annotated[
        str | None, Query(max_length=64, description="next_cursor of the previous page")
    ] = None,
) -> IncidentLogsPublic:
    """The log lines around the incident, newest first: its alert's service, host and
    instance, from ``before`` it opened until it resolved (or now)."""
    selected = await incident_log_filter(engine, incident_id, parse_before(before))
    query = parse_command(commands.SearchLogs, {**selected, "limit": limit, "cursor": cursor})
    reply = await request_owner(state, commands.SEARCH_LOGS, query, timeout=LOG_QUERY_TIMEOUT_S)
    services = selected["services"]
    return IncidentLogsPublic.model_validate(
        {
            **reply,
            "filter": {
                "start": selected["start"],
                "end": selected["end"],
                "service": services[0] if services else None,
                "labels": selected["labels"],
            },
        }
    )


async def incident_command(
    state: GatewayState, engine: AsyncEngine, incident_id: str, subject: str, command: BaseModel
) -> Any:
    outcome = await send_command(state, subject, command)
    return await updated_view(
        outcome, lambda: load_incident(engine, incident_id), resource_path("incidents", incident_id)
    )


@router.put("/{incident_id}/status", response_model=IncidentDetailPublic, responses=CHANGE)
async def change_incident_status(
    identity: Responder,
    state: StateDep,
    engine: EngineDep,
    incident_id: str,
    body: IncidentStatusUpdate,
) -> Any:
    command = parse_command(
        commands.ChangeIncidentStatus,
        {"incident_id": incident_id, **body.model_dump(), "by": identity.actor},
    )
    return await incident_command(
        state, engine, incident_id, commands.CHANGE_INCIDENT_STATUS, command
    )


@router.post(
    "/{incident_id}/notes", status_code=201, response_model=IncidentDetailPublic, responses=CHANGE
)
async def add_incident_note(
    identity: Responder,
    state: StateDep,
    engine: EngineDep,
    incident_id: str,
    body: IncidentNoteCreate,
) -> Any:
    command = parse_command(
        commands.AddIncidentNote,
        {"incident_id": incident_id, "text": body.text, "author": identity.actor},
    )
    outcome = await send_command(state, commands.ADD_INCIDENT_NOTE, command)
    return await updated_view(
        outcome,
        lambda: load_incident(engine, incident_id),
        resource_path("incidents", incident_id),
        status_code=201,
    )


@router.put("/{incident_id}/assignee", response_model=IncidentDetailPublic, responses=CHANGE)
async def assign_incident(
    identity: Responder,
    state: StateDep,
    engine: EngineDep,
    incident_id: str,
    body: IncidentAssigneeUpdate,
) -> Any:
    command = parse_command(
        commands.AssignIncident,
        {"incident_id": incident_id, "assignee": body.assignee, "by": identity.actor},
    )
    return await incident_command(state, engine, incident_id, commands.ASSIGN_INCIDENT, command)


@router.put("/{incident_id}/severity", response_model=IncidentDetailPublic, responses=CHANGE)
async def change_incident_severity(
    identity: Responder,
    state: StateDep,
    engine: EngineDep,
    incident_id: str,
    body: IncidentSeverityUpdate,
) -> Any:
    command = parse_command(
        commands.ChangeIncidentSeverity,
        {"incident_id": incident_id, "severity": body.severity, "by": identity.actor},
    )
    return await incident_command(
        state, engine, incident_id, commands.CHANGE_INCIDENT_SEVERITY, command
    )
