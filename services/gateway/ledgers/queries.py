"""Reads of the ledgers; every filter used here has an index."""

from __future__ import annotations

from typing import Any

from sqlalchemy import RowMapping, Select, func, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from services.gateway.common.pagination import Order, PageRequest, fetch_page
from services.gateway.common.tables import TIMELINE_COLUMNS
from services.gateway.ledgers.tables import (
    dead_letter_retries,
    dead_letters,
    notifications,
    subject_deliveries,
)
from shared.streams import NOTIFICATIONS

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
    query = with_retries()
    if consumer:
        query = query.where(dead_letters.c.consumer == consumer)
    return await fetch_page(engine, query, DEAD_LETTER_ORDER, page)


def with_retries() -> Select[Any]:
    """Dead letters with their latest re-drive, if any."""
    retried = dead_letter_retries
    return select(
        dead_letters,
        func.coalesce(retried.c.retries, 0).label("retries"),
        retried.c.retried_at,
        func.coalesce(retried.c.retried_by, "").label("retried_by"),
        retried.c.outcome,
        func.coalesce(retried.c.retry_error, "").label("retry_error"),
    ).outerjoin(retried, retried.c.dead_letter_id == dead_letters.c.id)


async def dead_letters_by_id(conn: AsyncConnection, ids: list[str]) -> dict[str, RowMapping]:
    rows = (await conn.execute(with_retries().where(dead_letters.c.id.in_(ids)))).mappings()
    return {str(row["id"]): row for row in rows}


async def get_dead_letter(engine: AsyncEngine, dead_letter_id: str) -> RowMapping | None:
    async with engine.connect() as conn:
        return (await dead_letters_by_id(conn, [dead_letter_id])).get(dead_letter_id)


async def deliveries_about(conn: AsyncConnection, subject_id: str) -> list[dict[str, Any]]:
    """Timeline entries of the notifications sent about one alert or incident."""
    rows = await conn.execute(
        select(*(subject_deliveries.c[name] for name in TIMELINE_COLUMNS))
        .where(subject_deliveries.c.subject_id == subject_id)
        .order_by(subject_deliveries.c.seq)
    )
    return [{**row, "stream": NOTIFICATIONS.name} for row in rows.mappings()]
