"""Reads of the incidents read model; every filter used here has an index."""

from __future__ import annotations

from typing import Any

from sqlalchemy import RowMapping, select
from sqlalchemy.ext.asyncio import AsyncEngine

from services.gateway.common.tables import TIMELINE_COLUMNS
from services.gateway.incidents.tables import incident_notes, incident_timeline, incidents

Row = RowMapping


async def list_incidents(
    engine: AsyncEngine, status: str | None, severity: str | None, limit: int
) -> list[Row]:
    query = select(incidents).order_by(incidents.c.opened_at.desc(), incidents.c.id).limit(limit)
    if status:
        query = query.where(incidents.c.status == status)
    if severity:
        query = query.where(incidents.c.severity == severity)
    async with engine.connect() as conn:
        return list((await conn.execute(query)).mappings())


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
        return {**row, "timeline": list(timeline.mappings()), "notes": list(notes.mappings())}
