"""Bytes per sample at rest in the metrics store, after compaction.

Drives N series x M samples, ten seconds apart, through the real store (the same calls
the metrics service makes for each batch from METRICS), compacts every block, and prints
the size of the store's file per sample: all of it (raw blocks, rollups, series, and the
free blocks DuckDB keeps for reuse), the blocks in use, and the raw blocks alone
(estimated from DuckDB's segment offsets). Compaction runs as the data advances, as in
the service, so only the last hours are hot at any time. The data looks like what
agents send: counters that grow by small steps, gauges with a few significant digits.

    python bench/storage_size.py --series 1000 --samples 8640

With ``--url`` the same samples go through a running Vigil (``vigil up``) instead, stamped
so that the newest is now, and the growth of ``<data dir>/metrics.duckdb`` is read once
the service has stored them and run a compaction pass (every 5 minutes; the last ~75
minutes stay hot, uncompacted, and are counted too):

    python bench/storage_size.py --url http://127.0.0.1:8080 --data-dir .vigil --series 200
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import aiohttp
import orjson
from auth import add_key_argument, auth_headers

from services.metrics.settings import MetricsSettings
from services.metrics.store import FILE_NAME, MetricsStore
from shared.events import Sample, SamplesIngested

HOUR_S = 3600
INTERVAL_S = 10
BLOCK_SIZE = 262_144  # DuckDB's storage block


def make_series(count: int, rng: random.Random) -> list[tuple[str, dict[str, str], str]]:
    """(name, labels, kind): half counters, half gauges, over hosts and a few metrics."""
    kinds = [
        ("http_requests_total", "counter"),
        ("node_cpu_seconds_total", "counter"),
        ("node_memory_used_percent", "gauge"),
        ("http_request_duration_ms", "gauge"),
        ("node_load1", "gauge"),
        ("disk_io_bytes_total", "counter"),
    ]
    out = []
    for n in range(count):
        name, kind = kinds[n % len(kinds)]
        labels = {"host": f"host-{n // len(kinds):04d}", "job": "node", "dc": rng.choice("abc")}
        out.append((name, labels, kind))
    return out


class Walker:
    """The next value of one series: a counter adds a small integer, a gauge wanders and
    is rounded to a few significant digits, as exporters print them."""

    def __init__(self, kind: str, rng: random.Random):
        self.kind = kind
        self.rng = rng
        self.value = float(rng.randint(0, 10_000)) if kind == "counter" else rng.uniform(1, 100)

    def next(self) -> float:
        if self.kind == "counter":
            self.value += self.rng.choice((0, 1, 1, 2, 3, 5, 8, 13))
            return self.value
        self.value = max(0.0, self.value + self.rng.gauss(0, 0.5))
        return round(self.value, 1)


def used_bytes(store: MetricsStore) -> int:
    """Storage blocks of the file in use (the rest are free, kept for reuse)."""
    cursor = store.core.reader()
    try:
        row = cursor.execute("SELECT used_blocks, block_size FROM pragma_database_size()")
        used, size = row.fetchone() or (0, 0)
    finally:
        cursor.close()
    return int(used) * int(size)


def bytes_of_tables(store: MetricsStore, prefix: str) -> int:
    """Bytes of the tables named ``prefix...``: each segment spans from its offset to the
    next segment's in the same storage block (or the block's end), plus whole blocks it
    continues into."""
    cursor = store.core.reader()
    try:
        names = [
            name
            for (name,) in cursor.execute(
                "SELECT table_name FROM duckdb_tables() WHERE schema_name = 'main'"
            ).fetchall()
        ]
        segments: list[tuple[int, int, str, int]] = []
        for name in names:
            for block_id, offset, extra in cursor.execute(
                f"SELECT block_id, block_offset, additional_block_ids "
                f"FROM pragma_storage_info('{name}') WHERE persistent AND block_id >= 0"
            ).fetchall():
                segments.append((int(block_id), int(offset), name, len(extra or [])))
    finally:
        cursor.close()
    segments.sort()
    total = 0
    for n, (block_id, offset, name, extra) in enumerate(segments):
        following = segments[n + 1] if n + 1 < len(segments) else None
        end = following[1] if following is not None and following[0] == block_id else BLOCK_SIZE
        if name.startswith(prefix):
            total += end - offset + extra * BLOCK_SIZE
    return total


async def drive(path: Path, series: int, samples: int, seed: int) -> None:
    rng = random.Random(seed)
    described = make_series(series, rng)
    walkers = [Walker(kind, rng) for _, _, kind in described]
    start = 1_700_000_000 - 1_700_000_000 % HOUR_S
    store = MetricsStore(path, MetricsSettings(), raw_retention_s=1e12)
    await store.open()
    stored = 0
    started = time.perf_counter()
    seq = 0
    try:
        per_batch = max(1, 5000 // series)  # about 5,000 samples a batch
        for step in range(0, samples, per_batch):
            rows = []
            for tick in range(step, min(samples, step + per_batch)):
                ts = start + tick * INTERVAL_S
                for (name, labels, _), walker in zip(described, walkers, strict=True):
                    rows.append(Sample(name=name, value=walker.next(), timestamp=ts, labels=labels))
            seq += 1
            event = SamplesIngested(aggregate_id="bench", samples=rows, received_at=float(ts))
            await store.store(seq, [event])
            stored += len(rows)
            if seq % 50 == 0:  # as the service does every few minutes, in data time
                await store.compact(float(ts))
        ingest_s = time.perf_counter() - started
        end = start + samples * INTERVAL_S
        began = time.perf_counter()
        await store.compact(end + 2 * HOUR_S)
        compact_s = time.perf_counter() - began
        raw_bytes = await store.read(lambda: bytes_of_tables(store, "raw_"))
        used = await store.read(lambda: used_bytes(store))
    finally:
        await store.close()
    total = sum(p.stat().st_size for p in path.parent.iterdir() if p.is_file())
    print(f"series: {series:,}, samples per series: {samples:,}, stored: {stored:,}")
    print(f"ingest: {stored / ingest_s:,.0f} samples/s into the store")
    print(f"final compaction: {compact_s:.1f} s")
    print(f"data dir after compaction: {total:,} bytes = {total / stored:.2f} bytes/sample")
    print(f"blocks in use in the file: {used:,} bytes = {used / stored:.2f} bytes/sample")
    print(f"raw blocks alone: {raw_bytes:,} bytes = {raw_bytes / stored:.2f} bytes/sample")


POST_SIZE = 5000  # samples per POST: the API takes up to 10,000


async def drive_running(
    url: str, key: str, data_dir: Path, series: int, samples: int, seed: int, wait_s: float
) -> None:
    """The same data through the API of a running Vigil; the store file's growth."""
    rng = random.Random(seed)
    described = make_series(series, rng)
    walkers = [Walker(kind, rng) for _, _, kind in described]
    path = data_dir / FILE_NAME
    size_before = path.stat().st_size if path.exists() else 0
    start = time.time() - samples * INTERVAL_S
    headers = {**auth_headers(key), "Content-Type": "application/json"}
    async with aiohttp.ClientSession(headers=headers) as session:
        before = await stats(session, url)
        pending: list[dict[str, object]] = []
        sent = 0
        for tick in range(samples):
            ts = start + tick * INTERVAL_S
            for (name, labels, _), walker in zip(described, walkers, strict=True):
                pending.append(
                    {
                        "name": f"bench_{name}",
                        "value": walker.next(),
                        "timestamp": ts,
                        "labels": labels,
                    }
                )
            if len(pending) >= POST_SIZE or tick == samples - 1:
                await post(session, url, pending)
                sent += len(pending)
                pending = []
        target = int(before["stored_samples"]) + sent
        while True:
            now = await stats(session, url)
            if int(now["stored_samples"]) >= target and int(now["backlog"]) == 0:
                break
            await asyncio.sleep(1)
    print(f"stored {sent:,} samples; waiting {wait_s:.0f} s for a compaction pass")
    await asyncio.sleep(wait_s)
    grown = path.stat().st_size - size_before
    print(f"{path} grew by {grown:,} bytes = {grown / sent:.2f} bytes/sample")


async def stats(session: aiohttp.ClientSession, url: str) -> dict[str, int]:
    async with session.get(url + "/api/monitoring/metrics/stats") as response:
        response.raise_for_status()
        body: dict[str, int] = orjson.loads(await response.read())
        return body


async def post(session: aiohttp.ClientSession, url: str, samples: list[dict[str, object]]) -> None:
    body = orjson.dumps(samples)
    while True:
        async with session.post(url + "/api/monitoring/metrics", data=body) as response:
            if response.status == 202:
                return
            if response.status != 429:
                raise RuntimeError(f"POST answered {response.status}: {await response.text()}")
            await asyncio.sleep(float(response.headers.get("Retry-After", "1")))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--series", type=int, default=1000)
    parser.add_argument("--samples", type=int, default=8640, help="per series (8640 = 24 h)")
    parser.add_argument("--seed", type=int, default=9)
    parser.add_argument("--keep", type=Path, help="leave the store file in this directory")
    parser.add_argument("--url", help="a running Vigil to send the samples to instead")
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=Path(os.environ.get("VIGIL_DATA_DIR", ".vigil")),
        help="its data dir, where metrics.duckdb is (with --url)",
    )
    parser.add_argument("--wait-s", type=float, default=400.0, help="for compaction (with --url)")
    add_key_argument(parser)
    args = parser.parse_args()
    if args.url:
        asyncio.run(
            drive_running(
                args.url.rstrip("/"),
                args.key,
                args.data_dir,
                args.series,
                args.samples,
                args.seed,
                args.wait_s,
            )
        )
        return
    directory = args.keep or Path(tempfile.mkdtemp(prefix="vigil-storage-"))
    directory.mkdir(parents=True, exist_ok=True)
    try:
        asyncio.run(drive(directory / FILE_NAME, args.series, args.samples, args.seed))
    finally:
        if args.keep is None:
            shutil.rmtree(directory)


if __name__ == "__main__":
    main()
