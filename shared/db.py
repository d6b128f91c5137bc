"""SQL read models: engines with durable SQLite settings, and exactly-once projection updates.

A projection records the last stream sequence it applied in the same transaction
as the change itself, so a redelivered message is recognised and skipped, and a
crash between the two cannot happen.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiosqlite
from sqlalchemy import BigInteger, Column, MetaData, String, Table, event, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from shared.settings import normalise_database_url

log = logging.getLogger(__name__)

INCREMENTAL = 2  # PRAGMA auto_vacuum's answer when incremental vacuum is on
WAL_SIZE_LIMIT = 64 * 1024 * 1024
CONNECT_BUSY_S = 30.0
CONNECT_RETRY_S = 0.05


_aiosqlite_stop = aiosqlite.Connection.stop


def _stop_once(self: aiosqlite.Connection) -> asyncio.Future[Any] | None:
    """aiosqlite's ``stop``, asked at most once per connection.

    SQLAlchemy terminates a connection whose connect was cancelled by closing it in a
    shielded task and, when cancelled again (a stopping service repeats its cancel), by
    ``stop()``. The close then ends with a second ``stop()``, which queues a request to the
    worker thread the first one already ended, and waits for its answer forever: the event
    loop can then never close. A connection already stopping is not stopped again.
    """
    if not self._running:
        return None
    return _aiosqlite_stop(self)


aiosqlite.Connection.stop = _stop_once  # type: ignore[method-assign]


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    """Set up a new connection, waiting out another one that holds the file for a moment.

    Opening a WAL file that another connection is recovering or closing answers "database
    is locked" at once, without the busy handler: the pragmas are retried instead.
    """
    deadline = time.monotonic() + CONNECT_BUSY_S
    while True:
        try:
            _apply_pragmas(dbapi_connection)
            return
        except sqlite3.OperationalError as exc:
            if not _is_busy(exc) or time.monotonic() > deadline:
                raise
            log.info("database busy while connecting; trying again", extra={"error": str(exc)})
            time.sleep(CONNECT_RETRY_S)


def _is_busy(exc: sqlite3.OperationalError) -> bool:
    text = str(exc)
    return "locked" in text or "busy" in text


def _apply_pragmas(dbapi_connection: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA busy_timeout=10000")
    # Setting either mode writes to the file: done only where needed, so opening a file
    # in use takes no write lock (a connection abandoned mid-setup would keep it).
    cursor.execute("PRAGMA auto_vacuum")
    if cursor.fetchone()[0] != INCREMENTAL:
        # takes at once on a file without tables (and must come before WAL, which writes
        # page 1); on an older file, with the VACUUM below
        cursor.execute("PRAGMA auto_vacuum=INCREMENTAL")
    cursor.execute("PRAGMA journal_mode")
    if str(cursor.fetchone()[0]).lower() != "wal":
        cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute(f"PRAGMA journal_size_limit={WAL_SIZE_LIMIT}")
    cursor.execute("PRAGMA auto_vacuum")
    if cursor.fetchone()[0] != INCREMENTAL:
        # a file made before incremental vacuum was on: one full VACUUM switches it. It needs
        # free space the size of the file; without it the file stays as it was until the
        # next connection tries again, rather than the service not starting.
        log.warning("rewriting the database once to turn on incremental vacuum")
        try:
            cursor.execute("VACUUM")
        except sqlite3.Error as exc:
            log.warning("could not rewrite the database; it keeps its free pages", exc_info=exc)
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
