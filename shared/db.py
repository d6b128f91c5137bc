"""SQL read models: engines with durable SQLite settings, and exactly-once projection updates.

A projection records the last stream sequence it applied in the same transaction
as the change itself, so a redelivered message is recognised and skipped, and a
crash between the two cannot happen.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy import BigInteger, Column, MetaData, String, Table, event, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from shared.settings import normalise_database_url


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def create_engine(url: str) -> AsyncEngine:
    url = normalise_database_url(url)
    if url.startswith("sqlite"):
        engine = create_async_engine(url, pool_size=1, max_overflow=4)
        sync_engine: Engine = engine.sync_engine
        event.listen(sync_engine, "connect", _sqlite_pragmas)
        return engine
    return create_async_engine(url, pool_size=5, max_overflow=10, pool_pre_ping=True)


def is_sqlite(engine: AsyncEngine) -> bool:
    return engine.dialect.name == "sqlite"


def checkpoint_table(metadata: MetaData, service: str) -> Table:
    return Table(
        f"{service}_checkpoints",
        metadata,
        Column("projection", String(100), primary_key=True),
        Column("last_seq", BigInteger, nullable=False),
    )


Change = Callable[[AsyncConnection], Awaitable[None]]
BatchChange = Callable[[AsyncConnection, int], Awaitable[None]]


class ProjectionStore:
    """A service's read-model database: its tables plus the checkpoints that guard them."""

    def __init__(self, engine: AsyncEngine, metadata: MetaData, service: str):
        self.engine = engine
        self.metadata = metadata
        self.service = service
        existing = metadata.tables.get(f"{service}_checkpoints")
        self.checkpoints = existing if existing is not None else checkpoint_table(metadata, service)

    async def create_all(self) -> None:
        async with self.engine.begin() as conn:
            await conn.run_sync(self.metadata.create_all)

    async def drop_all(self) -> None:
        async with self.engine.begin() as conn:
            await conn.run_sync(self.metadata.drop_all)

    async def reset(self) -> None:
        await self.drop_all()
        await self.create_all()

    async def last_seq(self, projection: str) -> int:
        async with self.engine.connect() as conn:
            value = await conn.scalar(
                select(self.checkpoints.c.last_seq).where(
                    self.checkpoints.c.projection == projection
                )
            )
        return int(value or 0)

    async def apply(self, projection: str, seq: int, change: Change) -> bool:
        """Run ``change`` and advance the checkpoint atomically; False if ``seq`` was applied."""

        async def unless_applied(conn: AsyncConnection, last: int) -> None:
            await change(conn)

        return await self.apply_through(projection, seq, unless_applied)

    async def apply_through(self, projection: str, seq: int, change: BatchChange) -> bool:
        """Run ``change(conn, last)`` and move the checkpoint to ``seq``, atomically.

        For a batch ending at ``seq``, ``change`` applies only the items after ``last``
        (the checkpoint before it), so a partly redelivered batch is applied once.
        False when ``seq`` was already applied and nothing ran.
        """
        async with self.engine.begin() as conn:
            query = select(self.checkpoints.c.last_seq).where(
                self.checkpoints.c.projection == projection
            )
            if not is_sqlite(self.engine):
                query = query.with_for_update()
            last = await conn.scalar(query)
            if last is not None and seq <= last:
                return False
            await change(conn, int(last or 0))
            if last is None:
                await conn.execute(
                    self.checkpoints.insert().values(projection=projection, last_seq=seq)
                )
            else:
                await conn.execute(
                    update(self.checkpoints)
                    .where(self.checkpoints.c.projection == projection)
                    .values(last_seq=seq)
                )
        return True

    async def dispose(self) -> None:
        await self.engine.dispose()
