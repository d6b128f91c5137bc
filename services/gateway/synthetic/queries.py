"""Reads of the synthetic read model; every filter used here has an index."""

from __future__ import annotations

from sqlalchemy import RowMapping, select
from sqlalchemy.ext.asyncio import AsyncEngine

from services.gateway.synthetic.tables import check_results, checks

Row = RowMapping


async def list_checks(engine: AsyncEngine) -> list[Row]:
    async with engine.connect() as conn:
        return list((await conn.execute(select(checks).order_by(checks.c.name))).mappings())


async def get_check(engine: AsyncEngine, check_id: str) -> Row | None:
    async with engine.connect() as conn:
        result = await conn.execute(select(checks).where(checks.c.id == check_id))
        return result.mappings().first()


async def list_check_results(engine: AsyncEngine, check_id: str | None, limit: int) -> list[Row]:
    query = select(check_results).order_by(check_results.c.seq.desc()).limit(limit)
    if check_id:
        query = query.where(check_results.c.check_id == check_id)
    async with engine.connect() as conn:
        return list((await conn.execute(query)).mappings())
