"""Public views of read-model rows by id, for live clients."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from sqlalchemy import Column, Table, select
from sqlalchemy.ext.asyncio import AsyncConnection

from services.gateway.common.projection import ViewLoader


def rows_as(model: type[BaseModel], table: Table, key: Column[Any] | None = None) -> ViewLoader:
    """Loads rows of ``table`` whose ``key`` (the primary key) is in ids, as ``model``."""
    column = key if key is not None else table.c.id

    async def load(conn: AsyncConnection, ids: list[str]) -> dict[str, dict[str, Any]]:
        rows = (await conn.execute(select(table).where(column.in_(ids)))).mappings()
        return {
            str(row[column.name]): model.model_validate(row).model_dump(mode="json") for row in rows
        }

    return load
