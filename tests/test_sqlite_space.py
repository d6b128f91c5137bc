"""SQLite gives the space of deleted rows back: incremental auto-vacuum on every file, and
the metrics retention pass releasing what it deleted. PostgreSQL's autovacuum does this
by itself, so these cases are SQLite's alone."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from sqlalchemy import event, text

from services.metrics.app import apply_retention
from services.metrics.projections import SampleStore
from services.metrics.settings import MetricsSettings
from shared.db import create_engine, release_free_space
from shared.events import Sample
from tests.metrics.conftest import batch

T0 = 1_700_000_000.0
INCREMENTAL = 2


def url(path: Path) -> str:
    return f"sqlite+aiosqlite:///{path}"


async def auto_vacuum_of(path: Path) -> int:
    engine = create_engine(url(path))
    try:
        async with engine.connect() as conn:
            return int(await conn.scalar(text("PRAGMA auto_vacuum")) or 0)
    finally:
        await engine.dispose()


async def test_a_new_file_uses_incremental_auto_vacuum(tmp_path: Path) -> None:
    store = SampleStore(create_engine(url(tmp_path / "new.db")))
    await store.create_all()
    await store.dispose()
    assert await auto_vacuum_of(tmp_path / "new.db") == INCREMENTAL


async def test_a_file_made_without_it_is_switched_once_and_keeps_its_rows(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as old:
        old.execute("PRAGMA journal_mode=WAL")
        old.execute("CREATE TABLE kept (n INTEGER)")
        old.executemany("INSERT INTO kept VALUES (?)", [(n,) for n in range(1000)])
    with sqlite3.connect(path) as old:
        assert old.execute("PRAGMA auto_vacuum").fetchone() == (0,)

    assert await auto_vacuum_of(path) == INCREMENTAL
    with sqlite3.connect(path) as reopened:
        assert reopened.execute("SELECT COUNT(*), SUM(n) FROM kept").fetchone() == (1000, 499500)


async def test_a_file_that_cannot_be_rewritten_is_still_opened(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as old:
        old.execute("PRAGMA journal_mode=WAL")
        old.execute("CREATE TABLE kept (n INTEGER)")
        old.execute("INSERT INTO kept VALUES (7)")
    engine = create_engine(url(path))

    def writes_refused(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA query_only=1")  # as on a full disk: the VACUUM fails
        cursor.close()

    event.listen(engine.sync_engine, "connect", writes_refused, insert=True)
    try:
        async with engine.connect() as conn:
            assert await conn.scalar(text("SELECT n FROM kept")) == 7
            assert await conn.scalar(text("PRAGMA auto_vacuum")) == 0
    finally:
        await engine.dispose()


async def test_the_file_shrinks_after_retention_deletes_most_rows(tmp_path: Path) -> None:
    path = tmp_path / "metrics.db"
    store = SampleStore(create_engine(url(path)))
    await store.create_all()
    try:
        for seq in range(1, 11):
            samples = [
                Sample(
                    name="bulk",
                    value=float(n),
                    timestamp=T0 + seq * 10_000 + n,
                    labels={"path": f"/{seq}/{n}/" + "x" * 300},
                )
                for n in range(5_000)
            ]
            await store.store(seq, [batch(samples)])
        full = path.stat().st_size
        assert full > 15_000_000

        # retention keeps the last 10,000 s: only the last batch (T0 + 100,000 on) stays
        deleted = await apply_retention(
            store, 10_000, MetricsSettings(), clock=lambda: T0 + 110_000
        )
        assert deleted == 45_000
        assert await store.stored_samples() == 5_000
        assert path.stat().st_size < full / 3
        assert await release_free_space(store.engine) == 0  # nothing left to release
    finally:
        await store.dispose()
