"""Reads of the contacts read model."""

from __future__ import annotations

from sqlalchemy import RowMapping
from sqlalchemy.ext.asyncio import AsyncEngine

from services.gateway.common.config_items import get_item, list_rows
from services.gateway.common.pagination import PageRequest
from services.gateway.contacts.tables import contacts
from shared.pagingconfig import ContactConfig


async def list_contacts(
    engine: AsyncEngine, source: str | None, page: PageRequest
) -> tuple[list[RowMapping], str | None]:
    return await list_rows(engine, contacts, source, page)


async def get_contact(engine: AsyncEngine, name: str) -> ContactConfig | None:
    """How a person is reached, as the notifier uses it; None when nobody set it."""
    return await get_item(engine, contacts, ContactConfig, name)
