"""Alerts as the API shows them: each row with why it pages nobody."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Select, false, func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from services.gateway.alerts.schemas import AlertPublic
from services.gateway.alerts.tables import alert_suppression, alerts


def with_suppression() -> Select[Any]:
    """Alerts with their reasons not to page (no row yet: nothing keeps it quiet)."""
    held = alert_suppression.c
    return select(
        alerts,
        held.suppressed_by,
        func.coalesce(held.flapping, false()).label("flapping"),
    ).outerjoin(alert_suppression, held.alert_id == alerts.c.id)


async def alert_views(conn: AsyncConnection, ids: list[str]) -> dict[str, dict[str, Any]]:
    """Public views of alerts by id, for live clients."""
    rows = (await conn.execute(with_suppression().where(alerts.c.id.in_(ids)))).mappings()
    return {str(row["id"]): AlertPublic.model_validate(row).model_dump(mode="json") for row in rows}
