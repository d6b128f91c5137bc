"""The gateway's one SQL schema: every section declares its tables on this metadata, so
one store creates, checkpoints and resets them all.

Every value a projector writes comes from the event (times included), never from the
clock, so replaying the log rebuilds exactly the same rows.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    DateTime,
    Index,
    MetaData,
    String,
    Table,
    Text,
    insert,
    update,
)
from sqlalchemy.ext.asyncio import AsyncConnection

SERVICE = "gateway"

metadata = MetaData()


def timeline(name: str, owner: str) -> Table:
    """Every event of one aggregate, in stream order: the history the API shows."""
    return Table(
        f"gateway_{name}_timeline",
        metadata,
        Column("seq", BigInteger, primary_key=True, autoincrement=False),
        Column(owner, String(200), nullable=False),
        Column("event_id", String(100), nullable=False),
        Column("type", String(100), nullable=False),
        Column("time", DateTime(timezone=True), nullable=False),
        Column("by", String(100), nullable=False, default=""),
        Column("detail", Text, nullable=False, default=""),
        Column("event", JSON, nullable=False),
        Index(f"gateway_{name}_timeline_{name}", owner, "seq"),
    )


TIMELINE_COLUMNS = ("seq", "type", "time", "by", "detail", "event")


def merged(*timelines: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Timelines from several streams as one, by time; on a tie the earlier argument
    first (an alert's own event before the page it caused, before that page's outcome)."""
    entries = [entry for timeline in timelines for entry in timeline]
    return sorted(entries, key=lambda entry: entry["time"])


async def upsert(
    conn: AsyncConnection, table: Table, key: dict[str, Any], values: dict[str, Any]
) -> None:
    """Portable upsert; safe because a projection has one message in flight."""
    condition = [table.c[name] == value for name, value in key.items()]
    result = await conn.execute(update(table).where(*condition).values(**values))
    if result.rowcount == 0:
        await conn.execute(insert(table).values(**key, **values))
