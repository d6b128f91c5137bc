"""A metrics store killed with SIGKILL mid-write loses no committed batch and keeps its
count and checkpoint in step with its samples."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from services.metrics.settings import MetricsSettings
from services.metrics.store import MetricsStore
from shared.commands import QuerySamples
from tests.metrics.conftest import KEEP_ALL_S

ROOT = Path(__file__).resolve().parents[2]
PER_BATCH = 1000

WRITER = f"""
import asyncio, sys
from pathlib import Path
from services.metrics.settings import MetricsSettings
from services.metrics.store import MetricsStore
from shared.events import Sample, SamplesIngested

H0 = 1_699_999_200.0

async def main():
    store = MetricsStore(Path(sys.argv[1]), MetricsSettings(), {KEEP_ALL_S})
    await store.open()
    seq = await store.last_seq()
    while True:
        seq += 1
        ts = H0 + seq * 600
        samples = [
            Sample(name="cpu", value=float(n), timestamp=ts + n / 100, labels={{"s": str(n % 50)}})
            for n in range({PER_BATCH})
        ]
        event = SamplesIngested(aggregate_id="crash", samples=samples, received_at=ts)
        await store.store(seq, [event])
        print(seq, flush=True)
        if seq % 4 == 0:
            await store.compact(ts)  # blocks are compacted between writes, and killed in it

asyncio.run(main())
"""


def write_until_killed(path: Path, batches: int) -> int:
    """Run a writer, SIGKILL it once it has committed ``batches`` more; the last
    sequence it reported committed."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(path)], stdout=subprocess.PIPE, text=True, env=env
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


async def reopened(path: Path) -> tuple[int, int, int, int]:
    store = MetricsStore(path, MetricsSettings(), KEEP_ALL_S)
    await store.open()
    try:
        stored, last_seq = await store.position()
        rows = len((await store.query(QuerySamples(limit=100_000))).rows)
        return stored, last_seq, rows, len(store.core.tables().raw)
    finally:
        await store.close()


def test_a_killed_writer_loses_no_committed_batch(tmp_path: Path) -> None:
    path = tmp_path / "metrics.duckdb"
    for batches in (13, 9, 11):  # each run resumes from the checkpoint the last one left
        committed = write_until_killed(path, batches)
        stored, last_seq, rows, raw = asyncio.run(reopened(path))
        assert last_seq >= committed
        assert stored == last_seq * PER_BATCH
        assert rows == stored
    assert raw > 0  # compactions had happened between the writes
