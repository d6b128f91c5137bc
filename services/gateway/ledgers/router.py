"""The notification and dead-letter ledgers, read only."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query

from services.gateway.common.errors import READ
from services.gateway.common.pagination import Page, PageParams
from services.gateway.common.paths import PREFIX
from services.gateway.common.routes import Viewer
from services.gateway.common.state import EngineDep
from services.gateway.ledgers import queries
from services.gateway.ledgers.schemas import DeadLetterPublic, NotificationPublic

router = APIRouter(prefix=PREFIX, tags=["ledgers"])


@router.get("/notifications", responses=READ)
async def list_notifications(
    _: Viewer,
    engine: EngineDep,
    page: PageParams,
    channel: Annotated[str | None, Query(max_length=100)] = None,
    status: Literal["delivered", "failed"] | None = None,
) -> Page[NotificationPublic]:
    """Newest first."""
    rows, next_cursor = await queries.list_notifications(engine, channel, status, page)
    items = [NotificationPublic.model_validate(row) for row in rows]
    return Page(items=items, next_cursor=next_cursor)


@router.get("/deadletters", responses=READ)
async def list_dead_letters(
    _: Viewer,
    engine: EngineDep,
    page: PageParams,
    consumer: Annotated[str | None, Query(max_length=200)] = None,
) -> Page[DeadLetterPublic]:
    """Newest first."""
    rows, next_cursor = await queries.list_dead_letters(engine, consumer, page)
    items = [DeadLetterPublic.model_validate(row) for row in rows]
    return Page(items=items, next_cursor=next_cursor)
