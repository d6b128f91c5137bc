"""Reads of the incidents read model; every filter used here has an index."""

from __future__ import annotations

from typing import Any

from sqlalchemy import RowMapping, select
from sqlalchemy.ext.asyncio import AsyncEngine

from services.gateway.common.pagination import Order, PageRequest, fetch_page
from services.gateway.common.tables import TIMELINE_COLUMNS, merged
from services.gateway.incidents.tables import incident_notes, incident_timeline, incidents
from services.gateway.ledgers.queries import deliveries_about
from shared.streams import INCIDENTS

Row = RowMapping


INCIDENT_ORDER: Order = ((incidents.c.opened_at, True), (incidents.c.id, False))


async def list_incidents(
    engine: AsyncEngine, status: str | None, severity: str | None, page: PageRequest
) -> tuple[list[Row], str | None]:
    query = select(incidents)
    if status:
        query = query.where(incidents.c.status == status)
    if severity:
        query = query.where(incidents.c.severity == severity)
    return await fetch_page(engine, query, INCIDENT_ORDER, page)


async def get_incident(engine: AsyncEngine, incident_id: str) -> dict[str, Any] | None:
    async with engine.connect() as conn:
        row = (
            (await conn.execute(select(incidents).where(incidents.c.id == incident_id)))
            .mappings()
            .first()
        )
        if row is None:
            return None
        timeline = await conn.execute(
            select(*(incident_timeline.c[name] for name in TIMELINE_COLUMNS))
            .where(incident_timeline.c.incident_id == incident_id)
            .order_by(incident_timeline.c.seq)
        )
        notes = await conn.execute(
            select(incident_notes)
            .where(incident_notes.c.incident_id == incident_id)
            .order_by(incident_notes.c.seq)
        )
        own = [{**entry, "stream": INCIDENTS.name} for entry in timeline.mappings()]
        delivered = await deliveries_about(conn, incident_id)
        return {**row, "timeline": merged(own, delivered), "notes": list(notes.mappings())}
