"""Applies CONFIG's channel events: the file's set replaced as a whole, the API's one by one."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncConnection

from services.gateway.channels.schemas import masked
from services.gateway.channels.tables import channels
from services.gateway.common.projection import Projection
from services.gateway.common.tables import upsert
from shared import subjects
from shared.channelconfig import ChannelBase
from shared.events import (
    ChannelCreated,
    ChannelDeleted,
    ChannelsProvisioned,
    ChannelUpdated,
    Event,
)
from shared.streams import CONFIG


def _row(channel: ChannelBase, event: Event, seq: int, **meta: Any) -> dict[str, Any]:
    return {
        "type": channel.type,
        # credentials are never kept here, only whether each is set
        "definition": masked(channel),
        "secret": "(set)" if any(channel.secrets().values()) else "",
        "version": event.version,
        "updated_at": event.time,
        "seq": seq,
        **meta,
    }


async def project_channels(conn: AsyncConnection, event: Event, seq: int) -> None:
    if isinstance(event, ChannelsProvisioned):
        await conn.execute(delete(channels).where(channels.c.source == "file"))
        for channel in event.channels:
            row = _row(channel, event, seq, source="file", file=event.file, updated_by="")
            await upsert(conn, channels, {"name": channel.name}, row)
    elif isinstance(event, ChannelCreated | ChannelUpdated):
        row = _row(event.channel, event, seq, source="api", file="", updated_by=event.by)
        await upsert(conn, channels, {"name": event.channel.name}, row)
    elif isinstance(event, ChannelDeleted):
        await conn.execute(
            delete(channels).where(channels.c.name == event.name, channels.c.source == "api")
        )


PROJECTION_NAME = "gateway-channels"
PROJECTIONS = (Projection(PROJECTION_NAME, CONFIG, f"{subjects.CONFIG}.>", project_channels),)
