"""Applies SILENCES events to the silences read model, as the alerts service folds them: an
expiry ends the silence at the event's time (and one not yet started never starts)."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from services.gateway.common.projection import Projection
from services.gateway.common.schemas import as_utc
from services.gateway.common.tables import upsert
from services.gateway.silences.tables import silences
from shared import subjects
from shared.events import Event, SilenceCreated, SilenceExpired, SilenceUpdated
from shared.streams import SILENCES


async def project_silence(conn: AsyncConnection, event: Event, seq: int) -> None:
    if isinstance(event, SilenceCreated):
        await upsert(
            conn,
            silences,
            {"id": event.aggregate_id},
            {
                "matchers": [m.model_dump(mode="json", by_alias=True) for m in event.matchers],
                "starts_at": event.starts_at.astimezone(UTC),
                "ends_at": event.ends_at.astimezone(UTC),
                "created_by": event.created_by,
                "comment": event.comment,
                "created_at": event.time,
                "updated_at": event.time,
                "updated_by": event.by,
                "expired_by": "",
                "version": event.version,
                "seq": seq,
            },
        )
    elif isinstance(event, SilenceUpdated):
        await conn.execute(
            update(silences)
            .where(silences.c.id == event.aggregate_id)
            .values(
                starts_at=event.starts_at.astimezone(UTC),
                ends_at=event.ends_at.astimezone(UTC),
                created_by=event.created_by,
                comment=event.comment,
                updated_at=event.time,
                updated_by=event.by,
                version=event.version,
                seq=seq,
            )
        )
    elif isinstance(event, SilenceExpired):
        row = (
            await conn.execute(
                select(silences.c.starts_at, silences.c.ends_at).where(
                    silences.c.id == event.aggregate_id
                )
            )
        ).first()
        if row is None:
            return
        ended: datetime = event.time.astimezone(UTC)
        await conn.execute(
            update(silences)
            .where(silences.c.id == event.aggregate_id)
            .values(
                starts_at=min(as_utc(row.starts_at), ended),
                ends_at=min(as_utc(row.ends_at), ended),
                updated_at=ended,
                updated_by=event.by,
                expired_by=event.by,
                version=event.version,
                seq=seq,
            )
        )


PROJECTION_NAME = "gateway-silences"
PROJECTIONS = (
    Projection(PROJECTION_NAME, SILENCES, f"{subjects.SILENCE_EVENTS}.>", project_silence),
)
