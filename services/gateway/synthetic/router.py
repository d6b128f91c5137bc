"""Synthetic checks: configured, run and removed through the synthetic service."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response
from sqlalchemy.ext.asyncio import AsyncEngine

from services.gateway.common.owners import ACCEPTED, accepted, send_command, updated_view
from services.gateway.common.pagination import Limit
from services.gateway.common.paths import PREFIX, resource_path
from services.gateway.common.state import EngineDep, StateDep
from services.gateway.synthetic import queries
from services.gateway.synthetic.schemas import CheckCreate, CheckPublic, CheckResultPublic
from shared import commands
from shared.commands import parse_command
from shared.errors import NotFound

router = APIRouter(prefix=f"{PREFIX}/synthetic", tags=["synthetic"])


async def load_check(engine: AsyncEngine, check_id: str) -> CheckPublic | None:
    row = await queries.get_check(engine, check_id)
    return None if row is None else CheckPublic.model_validate(row)


@router.get("/checks")
async def list_checks(engine: EngineDep) -> list[CheckPublic]:
    return [CheckPublic.model_validate(row) for row in await queries.list_checks(engine)]


@router.get("/checks/{check_id}")
async def get_check(engine: EngineDep, check_id: str) -> CheckPublic:
    check = await load_check(engine, check_id)
    if check is None:
        raise NotFound(f"check_id: no check {check_id!r}", field="check_id")
    return check


@router.post("/checks", status_code=201, response_model=CheckPublic, responses=ACCEPTED)
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


@router.post("/checks/{check_id}/run", response_model=CheckPublic, responses=ACCEPTED)
async def run_check(state: StateDep, engine: EngineDep, check_id: str) -> Any:
    command = parse_command(commands.RunCheck, {"check_id": check_id})
    outcome = await send_command(state, commands.RUN_CHECK, command)
    return await updated_view(
        outcome,
        lambda: load_check(engine, check_id),
        resource_path("synthetic", "checks", check_id),
    )


@router.delete(
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


@router.get("/results")
async def list_check_results(
    engine: EngineDep, check_id: str | None = None, limit: Limit = 100
) -> list[CheckResultPublic]:
    rows = await queries.list_check_results(engine, check_id, limit)
    return [CheckResultPublic.model_validate(row) for row in rows]
