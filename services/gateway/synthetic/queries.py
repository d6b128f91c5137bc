"""Reads of the synthetic read model; every filter used here has an index."""

from __future__ import annotations

from sqlalchemy import RowMapping, select
from sqlalchemy.ext.asyncio import AsyncEngine

from services.gateway.common.pagination import Order, PageRequest, fetch_page
from services.gateway.synthetic.tables import check_results, checks

Row = RowMapping


CHECK_ORDER: Order = ((checks.c.name, False), (checks.c.id, False))
RESULT_ORDER: Order = ((check_results.c.seq, True),)


async def list_checks(
    engine: AsyncEngine, source: str | None, page: PageRequest
) -> tuple[list[Row], str | None]:
    query = select(checks)
    if source:
        query = query.where(checks.c.source == source)
    return await fetch_page(engine, query, CHECK_ORDER, page)


async def get_check(engine: AsyncEngine, check_id: str) -> Row | None:
    async with engine.connect() as conn:
        result = await conn.execute(select(checks).where(checks.c.id == check_id))
        return result.mappings().first()


async def list_check_results(
    engine: AsyncEngine, check_id: str | None, page: PageRequest
) -> tuple[list[Row], str | None]:
    query = select(check_results)
    if check_id:
        query = query.where(check_results.c.check_id == check_id)
    return await fetch_page(engine, query, RESULT_ORDER, page)
