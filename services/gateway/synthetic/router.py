"""Synthetic checks: configured, run and removed through the synthetic service."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Response
from sqlalchemy.ext.asyncio import AsyncEngine

from services.gateway.common.errors import COMMAND, READ, READ_ONE
from services.gateway.common.owners import ACCEPTED, accepted, send_command, updated_view
from services.gateway.common.pagination import Page, PageParams
from services.gateway.common.paths import PREFIX, resource_path
from services.gateway.common.routes import Admin, Responder, Viewer
from services.gateway.common.state import EngineDep, StateDep
from services.gateway.synthetic import queries
from services.gateway.synthetic.schemas import CheckCreate, CheckPublic, CheckResultPublic
from shared import commands
from shared.commands import parse_command
from shared.errors import Conflict, InvalidInput, NotFound

router = APIRouter(prefix=f"{PREFIX}/synthetic", tags=["synthetic"])
CHANGE = {**ACCEPTED, **COMMAND}


async def load_check(engine: AsyncEngine, check_id: str) -> CheckPublic | None:
    row = await queries.get_check(engine, check_id)
    return None if row is None else CheckPublic.model_validate(row)


async def existing_check(engine: AsyncEngine, check_id: str) -> CheckPublic:
    check = await load_check(engine, check_id)
    if check is None:
        raise NotFound(f"check_id: no check {check_id!r}", field="check_id")
    return check


# checks from the YAML file: "file" (older events say "config")
FILE_SOURCES = ("file", "config")


def refuse_file_managed(check: CheckPublic) -> None:
    if check.source in FILE_SOURCES:
        raise Conflict(
            f"check_id: the check {check.name!r} is managed in the configuration file; "
            "change it there",
            field="check_id",
        )


@router.get("/checks", responses=READ)
async def list_checks(
    _: Viewer,
    engine: EngineDep,
    page: PageParams,
    source: Literal["file", "config", "api"] | None = None,
) -> Page[CheckPublic]:
    """By name."""
    rows, next_cursor = await queries.list_checks(engine, source, page)
    return Page(items=[CheckPublic.model_validate(row) for row in rows], next_cursor=next_cursor)


@router.get("/checks/{check_id}", responses=READ_ONE)
async def get_check(_: Viewer, engine: EngineDep, check_id: str) -> CheckPublic:
    return await existing_check(engine, check_id)


async def configure(state: StateDep, engine: AsyncEngine, body: CheckCreate, created: bool) -> Any:
    command = parse_command(commands.ConfigureCheck, body.command())
    outcome = await send_command(state, commands.CONFIGURE_CHECK, command)
    check_id = outcome.result.aggregate_id
    return await updated_view(
        outcome,
        lambda: load_check(engine, check_id),
        resource_path("synthetic", "checks", check_id),
        status_code=201 if created else 200,
    )


@router.post("/checks", status_code=201, response_model=CheckPublic, responses=CHANGE)
async def create_check(_: Admin, state: StateDep, engine: EngineDep, body: CheckCreate) -> Any:
    """Creates a check, or changes the one with the same name."""
    return await configure(state, engine, body, created=True)


@router.put("/checks/{check_id}", response_model=CheckPublic, responses=CHANGE)
async def update_check(
    _: Admin, state: StateDep, engine: EngineDep, check_id: str, body: CheckCreate
) -> Any:
    """Replaces a check's configuration; its name stays (a new name is a new check)."""
    check = await existing_check(engine, check_id)
    refuse_file_managed(check)
    if body.name != check.name:
        raise InvalidInput(
            f"name: a check's name cannot change ({check.name!r}); create a new check",
            field="name",
        )
    return await configure(state, engine, body, created=False)


@router.post("/checks/{check_id}/run", response_model=CheckPublic, responses=CHANGE)
async def run_check(_: Responder, state: StateDep, engine: EngineDep, check_id: str) -> Any:
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
        },
        **COMMAND,
    },
)
async def remove_check(_: Admin, state: StateDep, engine: EngineDep, check_id: str) -> Response:
    check = await load_check(engine, check_id)
    if check is not None:
        refuse_file_managed(check)
    command = parse_command(commands.RemoveCheck, {"check_id": check_id})
    outcome = await send_command(state, commands.REMOVE_CHECK, command)
    if not outcome.shown:
        return accepted(outcome.result, resource_path("synthetic", "checks", check_id))
    return Response(status_code=204)


@router.get("/results", responses=READ)
async def list_check_results(
    _: Viewer,
    engine: EngineDep,
    page: PageParams,
    check_id: Annotated[str | None, Query(max_length=200)] = None,
) -> Page[CheckResultPublic]:
    """Newest first."""
    rows, next_cursor = await queries.list_check_results(engine, check_id, page)
    items = [CheckResultPublic.model_validate(row) for row in rows]
    return Page(items=items, next_cursor=next_cursor)
