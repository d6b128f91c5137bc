"""Reads of the rules read model; every filter used here has an index."""

from __future__ import annotations

from sqlalchemy import RowMapping, select
from sqlalchemy.ext.asyncio import AsyncEngine

from services.gateway.common.pagination import Order, PageRequest, fetch_page
from services.gateway.rules.tables import rules

ORDER: Order = ((rules.c.name, False),)


async def list_rules(
    engine: AsyncEngine, source: str | None, metric: str | None, page: PageRequest
) -> tuple[list[RowMapping], str | None]:
    query = select(rules)
    if source:
        query = query.where(rules.c.source == source)
    if metric:
        query = query.where(rules.c.metric == metric)
    return await fetch_page(engine, query, ORDER, page)


async def get_rule(engine: AsyncEngine, name: str) -> RowMapping | None:
    async with engine.connect() as conn:
        return (await conn.execute(select(rules).where(rules.c.name == name))).mappings().first()
