"""Exactly-once read-model updates, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, select, text
from sqlalchemy.ext.asyncio import AsyncConnection

from shared.db import ProjectionStore, create_engine

metadata = MetaData()
counters = Table(
    "probe_counters",
    metadata,
    Column("name", String(50), primary_key=True),
    Column("hits", Integer, nullable=False),
)


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[ProjectionStore]:
    projection_store = ProjectionStore(create_engine(database_url), metadata, "probe")
    await projection_store.reset()
    yield projection_store
    await projection_store.drop_all()
    await projection_store.dispose()


async def bump(conn: AsyncConnection) -> None:
    updated = await conn.execute(counters.update().values(hits=counters.c.hits + 1))
    if updated.rowcount == 0:
        await conn.execute(counters.insert().values(name="a", hits=1))


async def test_redelivered_sequence_is_applied_once(store: ProjectionStore) -> None:
    assert await store.apply("probe", 1, bump) is True
    assert await store.apply("probe", 1, bump) is False
    assert await store.apply("probe", 2, bump) is True
    async with store.engine.connect() as conn:
        assert await conn.scalar(select(counters.c.hits)) == 2
    assert await store.last_seq("probe") == 2


async def test_failed_change_leaves_checkpoint_and_rows_untouched(store: ProjectionStore) -> None:
    await store.apply("probe", 1, bump)

    async def half_then_fail(conn: AsyncConnection) -> None:
        await bump(conn)
        raise RuntimeError("crash mid-update")

    with pytest.raises(RuntimeError):
        await store.apply("probe", 2, half_then_fail)
    async with store.engine.connect() as conn:
        assert await conn.scalar(select(counters.c.hits)) == 1
    assert await store.last_seq("probe") == 1


async def test_sqlite_runs_in_wal_mode_with_full_sync(tmp_path: object) -> None:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path}/durable.db")
    async with engine.connect() as conn:
        assert (await conn.execute(text("PRAGMA journal_mode"))).scalar() == "wal"
        assert (await conn.execute(text("PRAGMA synchronous"))).scalar() == 2  # FULL
    await engine.dispose()
