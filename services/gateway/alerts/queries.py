"""Reads of the alerts read model; every filter used here has an index."""

from __future__ import annotations

from typing import Any

from sqlalchemy import RowMapping, false, func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from services.gateway.alerts.paging import paging_timeline
from services.gateway.alerts.tables import alert_suppression, alert_timeline, alerts
from services.gateway.alerts.views import with_suppression
from services.gateway.common.pagination import Order, PageRequest, fetch_page
from services.gateway.common.tables import TIMELINE_COLUMNS, merged
from services.gateway.ledgers.queries import deliveries_about
from shared.streams import ALERTS, PAGING

Row = RowMapping


ALERT_ORDER: Order = ((alerts.c.fired_at, True), (alerts.c.id, False))


async def list_alerts(
    engine: AsyncEngine,
    status: str | None,
    severity: str | None,
    page: PageRequest,
    suppressed: bool | None = None,
    silenced: bool | None = None,
) -> tuple[list[Row], str | None]:
    query = with_suppression()
    held = alert_suppression.c
    if status:
        query = query.where(alerts.c.status == status)
    if severity:
        query = query.where(alerts.c.severity == severity)
    if suppressed is not None:
        query = query.where(func.coalesce(held.suppressed, false()) == suppressed)
    if silenced is not None:
        query = query.where(func.coalesce(held.silenced, false()) == silenced)
    return await fetch_page(engine, query, ALERT_ORDER, page)


async def get_alert(engine: AsyncEngine, alert_id: str) -> dict[str, Any] | None:
    async with engine.connect() as conn:
        found = await conn.execute(with_suppression().where(alerts.c.id == alert_id))
        row = found.mappings().first()
        if row is None:
            return None
        timeline = await conn.execute(
            select(*(alert_timeline.c[name] for name in TIMELINE_COLUMNS))
            .where(alert_timeline.c.alert_id == alert_id)
            .order_by(alert_timeline.c.seq)
        )
        own = [{**entry, "stream": ALERTS.name} for entry in timeline.mappings()]
        pages = await conn.execute(
            select(*(paging_timeline.c[name] for name in TIMELINE_COLUMNS))
            .where(paging_timeline.c.alert_id == alert_id)
            .order_by(paging_timeline.c.seq)
        )
        paged = [{**entry, "stream": PAGING.name} for entry in pages.mappings()]
        delivered = await deliveries_about(conn, alert_id)
        return {**row, "timeline": merged(own, paged, delivered)}
