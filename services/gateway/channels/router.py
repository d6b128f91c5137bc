"""Channels: list and read for viewers (secrets masked); create, change and delete for
admins, through the notifier."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Response
from sqlalchemy.ext.asyncio import AsyncEngine

from services.gateway.access import Identity, require
from services.gateway.channels import queries
from services.gateway.channels.projector import PROJECTION_NAME
from services.gateway.channels.schemas import ChannelPublic, Source, public_channel
from services.gateway.common.errors import COMMAND, READ, READ_ONE
from services.gateway.common.owners import (
    ACCEPTED,
    accepted,
    request_owner,
    send_command,
    updated_view,
)
from services.gateway.common.pagination import Page, PageParams
from services.gateway.common.paths import PREFIX, resource_path
from services.gateway.common.state import EngineDep, StateDep
from shared import commands
from shared.config import MAX_CHANNEL_TIMEOUT_S, ChannelConfig
from shared.errors import NotFound, VigilError

router = APIRouter(prefix=f"{PREFIX}/channels", tags=["channels"])
CHANGE = {**ACCEPTED, **COMMAND}
# the notifier waits for the receiver, at most the channel's timeout
TEST_TIMEOUT_S = MAX_CHANNEL_TIMEOUT_S + 10.0


class ChannelTestFailed(VigilError):
    """The receiver did not take the test message: the gateway's upstream failed (502)."""

    kind = "channel_test_failed"
    http_status = 502


Viewer = Annotated[Identity, require("viewer")]
Admin = Annotated[Identity, require("admin")]
ChannelName = Annotated[str, Path(min_length=1, max_length=100, description="The channel's name")]


def location(name: str) -> str:
    return resource_path("channels", name)


async def load_channel(engine: AsyncEngine, name: str) -> Any:
    row = await queries.get_channel(engine, name)
    return None if row is None else public_channel(row)


@router.get("", responses=READ)
async def list_channels(
    _: Viewer, engine: EngineDep, page: PageParams, source: Source | None = None
) -> Page[ChannelPublic]:
    """Every channel in use, by name: the configuration file's and those made here."""
    rows, next_cursor = await queries.list_channels(engine, source, page)
    return Page(items=[public_channel(row) for row in rows], next_cursor=next_cursor)


@router.get("/{name}", response_model=ChannelPublic, responses=READ_ONE)
async def get_channel(_: Viewer, engine: EngineDep, name: ChannelName) -> Any:
    channel = await load_channel(engine, name)
    if channel is None:
        raise NotFound(f"name: no channel {name!r}", field="name")
    return channel


@router.post("", status_code=201, response_model=ChannelPublic, responses=CHANGE)
async def create_channel(
    identity: Admin, state: StateDep, engine: EngineDep, body: ChannelConfig
) -> Any:
    """Used for the next notification; the secret is stored encrypted. 409 when the name is
    taken (by the file or the API)."""
    command = commands.CreateChannel(channel=body, by=identity.actor)
    outcome = await send_command(state, commands.CREATE_CHANNEL, command, PROJECTION_NAME)
    return await updated_view(
        outcome, lambda: load_channel(engine, body.name), location(body.name), status_code=201
    )


@router.put("/{name}", response_model=ChannelPublic, responses=CHANGE)
async def update_channel(
    identity: Admin, state: StateDep, engine: EngineDep, name: ChannelName, body: ChannelConfig
) -> Any:
    """Replaces the channel (its name stays); a secret of "(set)" keeps the current one.
    409 for a file-managed channel."""
    command = commands.UpdateChannel(name=name, channel=body, by=identity.actor)
    outcome = await send_command(state, commands.UPDATE_CHANNEL, command, PROJECTION_NAME)
    return await updated_view(outcome, lambda: load_channel(engine, name), location(name))


@router.delete(
    "/{name}",
    status_code=204,
    responses={
        202: {
            **ACCEPTED[202],
            "description": "Deleted, but the read model still lists the channel: the "
            "resource in the Location header answers 404 once it has caught up",
        },
        **COMMAND,
    },
)
async def delete_channel(identity: Admin, state: StateDep, name: ChannelName) -> Response:
    """Nothing more is sent to it; 409 for a file-managed channel."""
    command = commands.DeleteChannel(name=name, by=identity.actor)
    outcome = await send_command(state, commands.DELETE_CHANNEL, command, PROJECTION_NAME)
    if not outcome.shown:
        return accepted(outcome.result, location(name))
    return Response(status_code=204)


@router.post("/{name}/test", responses=COMMAND)
async def test_channel(
    identity: Admin, state: StateDep, name: ChannelName
) -> commands.ChannelTestResult:
    """Send a clearly marked test message ("Vigil test message from <you>") through the
    channel now, once, outside the ledger and its retries. 200 when the receiver took it;
    502 naming the channel and the receiver's error when it did not."""
    command = commands.SendChannelTest(name=name, by=identity.actor)
    reply = await request_owner(state, commands.TEST_CHANNEL, command, timeout=TEST_TIMEOUT_S)
    result = commands.ChannelTestResult.model_validate(reply)
    if not result.delivered:
        raise ChannelTestFailed(
            f"channel {result.channel!r} did not take the test message: {result.error}"
        )
    return result
