"""Read models and routes of configured items that hold no secret (contacts, schedules,
escalation policies): each section is one table, one projection of CONFIG and one router
made here, so the three read and change alike, and alike to rules and channels.

A row keeps the item as the file writes it; the file's set is replaced as a whole when
provisioned, the API's items one by one. Writes go to the owner (the notifier) and
answer with the read model once it shows them.
"""

# no ``from __future__ import annotations``: FastAPI reads the routes' annotations, which
# name the section's models held in this module's closures

from collections.abc import Callable
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Path, Response
from pydantic import BaseModel, ConfigDict, Field, create_model
from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    DateTime,
    Index,
    Integer,
    RowMapping,
    String,
    Table,
    Text,
    delete,
    select,
)
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from services.gateway.access import Identity, require
from services.gateway.common.errors import COMMAND, READ, READ_ONE
from services.gateway.common.owners import ACCEPTED, accepted, send_command, updated_view
from services.gateway.common.pagination import Page, PageParams, PageRequest, fetch_page
from services.gateway.common.paths import PREFIX, resource_path
from services.gateway.common.projection import Projection, Projector
from services.gateway.common.schemas import UtcDateTime
from services.gateway.common.state import EngineDep, StateDep
from services.gateway.common.tables import metadata, upsert
from shared import subjects
from shared.configbook import ConfigKind, Source
from shared.errors import NotFound
from shared.events import Event
from shared.streams import CONFIG

T = TypeVar("T", bound=BaseModel)

# --- the read model ------------------------------------------------------------------


def config_table(name: str) -> Table:
    return Table(
        name,
        metadata,
        Column("name", String(100), primary_key=True),
        Column("source", String(10), nullable=False),  # file | api
        Column("file", Text, nullable=False, default=""),
        Column("definition", JSON, nullable=False),  # as the YAML file writes it
        Column("version", Integer, nullable=False),
        Column("updated_at", DateTime(timezone=True), nullable=False),
        Column("updated_by", String(100), nullable=False, default=""),
        Column("seq", BigInteger, nullable=False),
        Index(f"{name}_source", "source", "name"),
    )


def _row(item: BaseModel, event: Event, seq: int, **meta: Any) -> dict[str, Any]:
    return {
        "definition": item.model_dump(mode="json", by_alias=True),
        "version": event.version,
        "updated_at": event.time,
        "seq": seq,
        **meta,
    }


def config_projector(kind: ConfigKind[Any], table: Table) -> Projector:
    """Applies one kind's events; every other event on CONFIG is passed over by type."""

    async def project(conn: AsyncConnection, event: Event, seq: int) -> None:
        if isinstance(event, kind.provisioned):
            await conn.execute(delete(table).where(table.c.source == "file"))
            file = str(getattr(event, "file", ""))
            for item in kind.items_of(event):
                row = _row(item, event, seq, source="file", file=file, updated_by="")
                await upsert(conn, table, {"name": item.name}, row)
        elif isinstance(event, kind.created | kind.updated):
            item = kind.item_of(event)
            by = str(getattr(event, "by", ""))
            row = _row(item, event, seq, source="api", file="", updated_by=by)
            await upsert(conn, table, {"name": item.name}, row)
        elif isinstance(event, kind.deleted):
            name = str(getattr(event, "name", ""))
            await conn.execute(delete(table).where(table.c.name == name, table.c.source == "api"))

    return project


def config_projection(name: str, kind: ConfigKind[Any], table: Table) -> Projection:
    return Projection(name, CONFIG, f"{subjects.CONFIG}.>", config_projector(kind, table))


async def list_rows(
    engine: AsyncEngine, table: Table, source: str | None, page: PageRequest
) -> tuple[list[RowMapping], str | None]:
    query = select(table)
    if source:
        query = query.where(table.c.source == source)
    return await fetch_page(engine, query, ((table.c.name, False),), page)


async def get_row(engine: AsyncEngine, table: Table, name: str) -> RowMapping | None:
    async with engine.connect() as conn:
        return (await conn.execute(select(table).where(table.c.name == name))).mappings().first()


async def get_item(engine: AsyncEngine, table: Table, model: type[T], name: str) -> T | None:
    """The item in use by that name, as its owner uses it (the file's or the API's)."""
    row = await get_row(engine, table, name)
    return None if row is None else model.model_validate(row["definition"])


# --- the public form -------------------------------------------------------------------


def public_model(model: type[BaseModel]) -> type[BaseModel]:
    """The item as the file writes it (``delay: 5m``), and where it comes from."""
    public: type[BaseModel] = create_model(
        f"{model.__name__.removesuffix('Config')}Public",
        __base__=model,
        __doc__=model.__doc__,
        source=(
            Source,
            Field(
                description="file: managed by the configuration file, read-only here; "
                "api: made here"
            ),
        ),
        file=(str, Field(description="The configuration file that manages it; empty for api")),
        version=(int, ...),
        updated_at=(UtcDateTime, ...),
        updated_by=(str, Field(description="Who made the last change; empty for the file's")),
    )
    public.model_config = ConfigDict(**{**model.model_config, "serialize_by_alias": True})
    public.model_rebuild(force=True)
    return public


def public_item(public: type[BaseModel], row: Any) -> BaseModel:
    return public.model_validate(
        {
            **row["definition"],
            "source": row["source"],
            "file": row["file"],
            "version": row["version"],
            "updated_at": row["updated_at"],
            "updated_by": row["updated_by"],
        }
    )


# --- the routes --------------------------------------------------------------------------

Viewer = Annotated[Identity, require("viewer")]
Admin = Annotated[Identity, require("admin")]


def config_router(
    *,
    path: str,
    noun: str,
    model: type[BaseModel],
    public: type[BaseModel],
    table: Table,
    projection: str,
    create: tuple[str, Callable[[Any, str], BaseModel]],
    update: tuple[str, Callable[[str, Any, str], BaseModel]],
    remove: tuple[str, Callable[[str, str], BaseModel]],
    said: dict[str, str],
    listing: bool = True,
) -> APIRouter:
    """List and read for viewers; create, replace and delete for admins, through the
    owner. ``said`` adds each operation's own words (``list``, ``create``, ``update``,
    ``delete``) to its documentation. Without ``listing`` the section lists its items its
    own way (a route it adds for GET on the path)."""
    plural = path.replace("-", "_")
    router = APIRouter(prefix=f"{PREFIX}/{path}", tags=[path])
    change = {**ACCEPTED, **COMMAND}
    item_name = Annotated[str, Path(min_length=1, max_length=100, description=f"The {noun}'s name")]

    def location(name: str) -> str:
        return resource_path(path, name)

    async def load(engine: AsyncEngine, name: str) -> BaseModel | None:
        row = await get_row(engine, table, name)
        return None if row is None else public_item(public, row)

    async def list_items(
        _: Viewer, engine: EngineDep, page: PageParams, source: Source | None = None
    ) -> Any:
        rows, next_cursor = await list_rows(engine, table, source, page)
        return {"items": [public_item(public, row) for row in rows], "next_cursor": next_cursor}

    async def get_one(_: Viewer, engine: EngineDep, name: item_name) -> Any:
        found = await load(engine, name)
        if found is None:
            raise NotFound(f"name: no {noun} {name!r}", field="name")
        return found

    async def create_one(
        identity: Admin,
        state: StateDep,
        engine: EngineDep,
        body: model,  # type: ignore[valid-type]
    ) -> Any:
        subject, command = create
        name = str(body.name)  # type: ignore[attr-defined]
        outcome = await send_command(state, subject, command(body, identity.actor), projection)
        return await updated_view(
            outcome, lambda: load(engine, name), location(name), status_code=201
        )

    async def update_one(
        identity: Admin,
        state: StateDep,
        engine: EngineDep,
        name: item_name,
        body: model,  # type: ignore[valid-type]
    ) -> Any:
        subject, command = update
        outcome = await send_command(
            state, subject, command(name, body, identity.actor), projection
        )
        return await updated_view(outcome, lambda: load(engine, name), location(name))

    async def delete_one(identity: Admin, state: StateDep, name: item_name) -> Response:
        subject, command = remove
        outcome = await send_command(state, subject, command(name, identity.actor), projection)
        if not outcome.shown:
            return accepted(outcome.result, location(name))
        return Response(status_code=204)

    if listing:
        router.add_api_route(
            "",
            list_items,
            methods=["GET"],
            name=f"list_{plural}",
            response_model=Page[public],  # type: ignore[valid-type]
            responses=READ,
            description=said.get("list", ""),
        )
    router.add_api_route(
        "/{name}",
        get_one,
        methods=["GET"],
        name=f"get_{noun.replace(' ', '_')}",
        response_model=public,
        responses=READ_ONE,
    )
    router.add_api_route(
        "",
        create_one,
        methods=["POST"],
        name=f"create_{noun.replace(' ', '_')}",
        status_code=201,
        response_model=public,
        responses=change,
        description=said.get("create", ""),
    )
    router.add_api_route(
        "/{name}",
        update_one,
        methods=["PUT"],
        name=f"update_{noun.replace(' ', '_')}",
        response_model=public,
        responses=change,
        description=said.get("update", ""),
    )
    router.add_api_route(
        "/{name}",
        delete_one,
        methods=["DELETE"],
        name=f"delete_{noun.replace(' ', '_')}",
        status_code=204,
        responses={
            202: {
                **ACCEPTED[202],
                "description": f"Deleted, but the read model still lists the {noun}: the "
                "resource in the Location header answers 404 once it has caught up",
            },
            **COMMAND,
        },
        description=said.get("delete", ""),
    )
    return router
