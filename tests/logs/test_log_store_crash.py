"""A log store killed with SIGKILL mid-write loses no committed batch, and its lines, index
and checkpoint stay in step."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from sqlalchemy import text

from services.metrics.logs import reads
from services.metrics.logs.store import LogStore
from services.metrics.logs.tables import FTS
from shared.commands import SearchLogs
from shared.db import create_engine
from shared.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
PER_BATCH = 2000

WRITER = f"""
import asyncio, sys, time
from services.metrics.logs.store import LogStore
from shared.db import create_engine
from shared.events import LogsIngested
from shared.settings import Settings

async def main():
    store = LogStore(create_engine(sys.argv[1]), Settings())
    await store.open()
    seq = await store.last_seq()
    while True:
        seq += 1
        now = time.time()
        entries = [
            {{"message": f"batch {{seq}} line {{n}} of the crash test", "timestamp": None,
              "level": "info", "service": "crash", "labels": {{"n": str(n % 7)}},
              "fields": {{"n": n}}, "trace_id": None, "span_id": None}}
            for n in range({PER_BATCH})
        ]
        await store.store_sequenced([(seq, LogsIngested(aggregate_id="crash",
            entries=entries, received_at=now))])
        print(seq, flush=True)

asyncio.run(main())
"""


def write_until_killed(url: str, batches: int) -> int:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, url], stdout=subprocess.PIPE, text=True, env=env
    )
    assert writer.stdout is not None
    committed, seen = 0, 0
    deadline = time.monotonic() + 60
    try:
        while seen < batches and time.monotonic() < deadline:
            line = writer.stdout.readline()
            if not line:
                break
            committed, seen = int(line), seen + 1
    finally:
        writer.send_signal(signal.SIGKILL)
        writer.wait()
    assert seen == batches, "the writer did not get going"
    return committed


async def reopened(url: str) -> tuple[int, int, int, int]:
    store = LogStore(create_engine(url), Settings())
    await store.open()
    try:
        async with store.engine.connect() as conn:
            indexed = (
                await conn.execute(text(f"SELECT count(*) FROM {FTS} WHERE {FTS} MATCH 'crash'"))
            ).scalar_one()
        found = await reads.search(store, SearchLogs(q='"line 1999"', limit=1000))
        return await store.last_seq(), await store.count(), int(indexed), len(found["entries"])
    finally:
        await store.close()


def test_a_killed_writer_loses_no_committed_batch(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'metrics.db'}"
    for batches in (5, 3, 4):  # each run resumes from the checkpoint the last one left
        committed = write_until_killed(url, batches)
        last_seq, lines, indexed, last_lines = asyncio.run(reopened(url))
        assert last_seq >= committed
        assert lines == indexed == last_seq * PER_BATCH
        assert last_lines == last_seq  # one line of each batch
