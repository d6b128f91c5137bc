"""Reads of the silences read model: those in force or to come, then the latest ended."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import RowMapping, select
from sqlalchemy.ext.asyncio import AsyncEngine

from services.gateway.silences.tables import silences

EXPIRED_SHOWN = 1000  # the newest ended silences a list includes


async def list_silences(engine: AsyncEngine, now: datetime) -> list[RowMapping]:
    async with engine.connect() as conn:
        current = (await conn.execute(select(silences).where(silences.c.ends_at > now))).mappings()
        rows = list(current)
        ended = (
            await conn.execute(
                select(silences)
                .where(silences.c.ends_at <= now)
                .order_by(silences.c.ends_at.desc(), silences.c.id)
                .limit(EXPIRED_SHOWN)
            )
        ).mappings()
        return rows + list(ended)


async def get_silence(engine: AsyncEngine, silence_id: str) -> RowMapping | None:
    async with engine.connect() as conn:
        query = select(silences).where(silences.c.id == silence_id)
        return (await conn.execute(query)).mappings().first()
