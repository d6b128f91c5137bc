"""The notification and dead-letter ledgers, read only."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from services.gateway.common.pagination import Limit
from services.gateway.common.paths import PREFIX
from services.gateway.common.state import EngineDep
from services.gateway.ledgers import queries
from services.gateway.ledgers.schemas import DeadLetterPublic, NotificationPublic

router = APIRouter(prefix=PREFIX, tags=["ledgers"])


@router.get("/notifications")
async def list_notifications(
    engine: EngineDep,
    channel: str | None = None,
    status: Annotated[str | None, Query(pattern="^(delivered|failed)$")] = None,
    limit: Limit = 100,
) -> list[NotificationPublic]:
    rows = await queries.list_notifications(engine, channel, status, limit)
    return [NotificationPublic.model_validate(row) for row in rows]


@router.get("/deadletters")
async def list_dead_letters(
    engine: EngineDep, consumer: str | None = None, limit: Limit = 100
) -> list[DeadLetterPublic]:
    rows = await queries.list_dead_letters(engine, consumer, limit)
    return [DeadLetterPublic.model_validate(row) for row in rows]
