"""SQLite gives the space of deleted rows back: incremental auto-vacuum on every file.
PostgreSQL's autovacuum does this by itself, so these cases are SQLite's alone. (The
metrics store is DuckDB: its space reuse is tested in tests/metrics.)"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from sqlalchemy import event, text

from shared.db import create_engine

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
    engine = create_engine(url(tmp_path / "new.db"))
    async with engine.begin() as conn:
        await conn.execute(text("CREATE TABLE made (n INTEGER)"))
    await engine.dispose()
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
