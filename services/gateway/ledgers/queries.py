"""Reads of the ledgers read model; every filter used here has an index."""

from __future__ import annotations

from sqlalchemy import RowMapping, select
from sqlalchemy.ext.asyncio import AsyncEngine

from services.gateway.ledgers.tables import dead_letters, notifications

Row = RowMapping


async def list_notifications(
    engine: AsyncEngine, channel: str | None, status: str | None, limit: int
) -> list[Row]:
    query = select(notifications).order_by(notifications.c.seq.desc()).limit(limit)
    if channel:
        query = query.where(notifications.c.channel == channel)
    if status:
        query = query.where(notifications.c.status == status)
    async with engine.connect() as conn:
        return list((await conn.execute(query)).mappings())


async def list_dead_letters(engine: AsyncEngine, consumer: str | None, limit: int) -> list[Row]:
    query = select(dead_letters).order_by(dead_letters.c.seq.desc()).limit(limit)
    if consumer:
        query = query.where(dead_letters.c.consumer == consumer)
    async with engine.connect() as conn:
        return list((await conn.execute(query)).mappings())
