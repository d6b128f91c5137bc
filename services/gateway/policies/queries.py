"""Reads of the escalation policies read model."""

from __future__ import annotations

from sqlalchemy import RowMapping
from sqlalchemy.ext.asyncio import AsyncEngine

from services.gateway.common.config_items import get_item, list_rows
from services.gateway.common.pagination import PageRequest
from services.gateway.policies.tables import policies
from shared.pagingconfig import EscalationPolicyConfig


async def list_policies(
    engine: AsyncEngine, source: str | None, page: PageRequest
) -> tuple[list[RowMapping], str | None]:
    return await list_rows(engine, policies, source, page)


async def get_policy(engine: AsyncEngine, name: str) -> EscalationPolicyConfig | None:
    return await get_item(engine, policies, EscalationPolicyConfig, name)
