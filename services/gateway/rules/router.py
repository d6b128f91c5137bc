"""Rules: list and read for viewers; create, change and delete for admins, through alerts."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Response
from sqlalchemy.ext.asyncio import AsyncEngine

from services.gateway.access import Identity, require
from services.gateway.common.errors import COMMAND, READ, READ_ONE
from services.gateway.common.owners import ACCEPTED, accepted, send_command, updated_view
from services.gateway.common.pagination import Page, PageParams
from services.gateway.common.paths import PREFIX, resource_path
from services.gateway.common.state import EngineDep, StateDep
from services.gateway.rules import queries
from services.gateway.rules.projector import PROJECTION_NAME
from services.gateway.rules.schemas import RulePublic, Source
from shared import commands
from shared.config import RuleConfig
from shared.errors import NotFound

router = APIRouter(prefix=f"{PREFIX}/alerts/rules", tags=["rules"])
CHANGE = {**ACCEPTED, **COMMAND}

Viewer = Annotated[Identity, require("viewer")]
Admin = Annotated[Identity, require("admin")]
RuleName = Annotated[str, Path(min_length=1, max_length=100, description="The rule's name")]


def location(name: str) -> str:
    return resource_path("alerts", "rules", name)


async def load_rule(engine: AsyncEngine, name: str) -> RulePublic | None:
    row = await queries.get_rule(engine, name)
    return None if row is None else RulePublic.of(row)


@router.get("", responses=READ)
async def list_rules(
    _: Viewer,
    engine: EngineDep,
    page: PageParams,
    source: Source | None = None,
    metric: Annotated[str | None, Query(min_length=1, max_length=200)] = None,
) -> Page[RulePublic]:
    """Every rule in use, by name: the configuration file's and those made here."""
    rows, next_cursor = await queries.list_rules(engine, source, metric, page)
    return Page(items=[RulePublic.of(row) for row in rows], next_cursor=next_cursor)


@router.get("/{name}", responses=READ_ONE)
async def get_rule(_: Viewer, engine: EngineDep, name: RuleName) -> RulePublic:
    rule = await load_rule(engine, name)
    if rule is None:
        raise NotFound(f"name: no rule {name!r}", field="name")
    return rule


@router.post("", status_code=201, response_model=RulePublic, responses=CHANGE)
async def create_rule(identity: Admin, state: StateDep, engine: EngineDep, body: RuleConfig) -> Any:
    """Judges the very next sample; 409 when the name is taken (by the file or the API)."""
    command = commands.CreateRule(rule=body, by=identity.actor)
    outcome = await send_command(state, commands.CREATE_RULE, command, PROJECTION_NAME)
    return await updated_view(
        outcome, lambda: load_rule(engine, body.name), location(body.name), status_code=201
    )


@router.put("/{name}", response_model=RulePublic, responses=CHANGE)
async def update_rule(
    identity: Admin, state: StateDep, engine: EngineDep, name: RuleName, body: RuleConfig
) -> Any:
    """Replaces the rule (its name stays); 409 for a file-managed rule."""
    command = commands.UpdateRule(name=name, rule=body, by=identity.actor)
    outcome = await send_command(state, commands.UPDATE_RULE, command, PROJECTION_NAME)
    return await updated_view(outcome, lambda: load_rule(engine, name), location(name))


@router.delete(
    "/{name}",
    status_code=204,
    responses={
        202: {
            **ACCEPTED[202],
            "description": "Deleted, but the read model still lists the rule: the resource "
            "in the Location header answers 404 once it has caught up",
        },
        **COMMAND,
    },
)
async def delete_rule(identity: Admin, state: StateDep, name: RuleName) -> Response:
    """Stops judging samples by it and closes its open alerts; 409 for a file-managed rule."""
    command = commands.DeleteRule(name=name, by=identity.actor)
    outcome = await send_command(state, commands.DELETE_RULE, command, PROJECTION_NAME)
    if not outcome.shown:
        return accepted(outcome.result, location(name))
    return Response(status_code=204)
