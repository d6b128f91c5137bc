"""A SQLite connection closed while it is being stopped (SQLAlchemy's terminate of a
connect cancelled twice, as a stopping service repeats its cancel) does not wait forever."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiosqlite

import shared.db  # noqa: F401  # asks aiosqlite's stop at most once per connection


async def test_a_close_racing_a_stop_ends(tmp_path: Path) -> None:
    connection = await aiosqlite.connect(tmp_path / "store.db")
    closing = asyncio.create_task(connection.close())
    await asyncio.sleep(0)  # the close is queued to the worker thread first
    connection.stop()  # then the forced stop
    await asyncio.wait_for(closing, 5)
    assert not connection._running
