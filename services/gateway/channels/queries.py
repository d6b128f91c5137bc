"""Reads of the channels read model."""

from __future__ import annotations

from sqlalchemy import RowMapping, select
from sqlalchemy.ext.asyncio import AsyncEngine

from services.gateway.channels.tables import channels
from services.gateway.common.pagination import Order, PageRequest, fetch_page

ORDER: Order = ((channels.c.name, False),)


async def list_channels(
    engine: AsyncEngine, source: str | None, page: PageRequest
) -> tuple[list[RowMapping], str | None]:
    query = select(channels)
    if source:
        query = query.where(channels.c.source == source)
    return await fetch_page(engine, query, ORDER, page)


async def get_channel(engine: AsyncEngine, name: str) -> RowMapping | None:
    async with engine.connect() as conn:
        query = select(channels).where(channels.c.name == name)
        return (await conn.execute(query)).mappings().first()
