"""Reads of the ledgers; every filter used here has an index."""

from __future__ import annotations

from sqlalchemy import RowMapping, select
from sqlalchemy.ext.asyncio import AsyncEngine

from services.gateway.common.pagination import Order, PageRequest, fetch_page
from services.gateway.ledgers.tables import dead_letters, notifications

Row = RowMapping

NOTIFICATION_ORDER: Order = ((notifications.c.seq, True),)
DEAD_LETTER_ORDER: Order = ((dead_letters.c.seq, True),)


async def list_notifications(
    engine: AsyncEngine, channel: str | None, status: str | None, page: PageRequest
) -> tuple[list[Row], str | None]:
    query = select(notifications)
    if channel:
        query = query.where(notifications.c.channel == channel)
    if status:
        query = query.where(notifications.c.status == status)
    return await fetch_page(engine, query, NOTIFICATION_ORDER, page)


async def list_dead_letters(
    engine: AsyncEngine, consumer: str | None, page: PageRequest
) -> tuple[list[Row], str | None]:
    query = select(dead_letters)
    if consumer:
        query = query.where(dead_letters.c.consumer == consumer)
    return await fetch_page(engine, query, DEAD_LETTER_ORDER, page)
