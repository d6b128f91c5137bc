"""Reads of the schedules read model, and of the contacts who are on call in them."""

from __future__ import annotations

from sqlalchemy import RowMapping
from sqlalchemy.ext.asyncio import AsyncEngine

from services.gateway.common.config_items import get_item, list_rows
from services.gateway.common.pagination import PageRequest
from services.gateway.contacts.queries import get_contact
from services.gateway.schedules.tables import schedules
from shared.pagingconfig import ScheduleConfig

__all__ = ["get_contact", "get_schedule", "list_schedules"]


async def list_schedules(
    engine: AsyncEngine, source: str | None, page: PageRequest
) -> tuple[list[RowMapping], str | None]:
    return await list_rows(engine, schedules, source, page)


async def get_schedule(engine: AsyncEngine, name: str) -> ScheduleConfig | None:
    """The schedule in use by that name (the file's or the API's); None when there is none."""
    return await get_item(engine, schedules, ScheduleConfig, name)
