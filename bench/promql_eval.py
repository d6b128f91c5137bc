"""PromQL evaluation cost, against the in-memory source (the store is measured apart).

Two workloads from the issue's floors, each run ``--runs`` times, p50/p99 printed:

- ``sum by (host) (rate(x[5m]))`` over 1,000 counters (50 hosts x 20) scraped every
  15 s for an hour: one instant query, and the same as a 1 h range at 60 s steps;
- ``query_range`` over 24 h x 100 series at 60 s steps: ``x`` and ``rate(x[5m])``, scraped
  every 15 s; timed both as evaluation alone and with the JSON body of the HTTP API (orjson).

    .venv/bin/python bench/promql_eval.py
    .venv/bin/python bench/promql_eval.py --runs 50
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import numpy as np
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from services.metrics.promql import Engine
from tests.metrics.promql.memory_source import MemorySource

SCRAPE_MS = 15_000
HOUR_MS = 3_600_000
FLOOR_RATE_P99_MS = 100
FLOOR_RANGE_24H_P99_MS = 50


def counters(source: MemorySource, count: int, hosts: int, span_ms: int, seed: int) -> int:
    """``count`` counters over ``span_ms``, with jittered scrapes and the odd reset."""
    rng = np.random.default_rng(seed)
    base = np.arange(0, span_ms, SCRAPE_MS, dtype=np.int64)
    for i in range(count):
        ts = base + rng.integers(0, 500, len(base))
        values = np.cumsum(rng.integers(0, 20, len(base))).astype(np.float64)
        if i % 10 == 0:  # one in ten resets half-way
            values[len(values) // 2 :] -= values[len(values) // 2]
        source.add({"__name__": "x", "host": f"h{i % hosts}", "instance": f"i{i}"}, ts, values)
    return count * len(base)


async def timed(label: str, runs: int, call: Callable[[], Awaitable[object]]) -> float:
    await call()  # warm up
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        await call()
        times.append((time.perf_counter() - start) * 1000)
    p50, p99 = np.percentile(times, 50), np.percentile(times, 99)
    print(f"  {label:<58} p50 {p50:7.1f} ms   p99 {p99:7.1f} ms")
    return float(p99)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args()

    hour = MemorySource()
    samples = counters(hour, 1_000, 50, HOUR_MS, seed=1)
    engine = Engine(hour)
    end = HOUR_MS - 1
    print(f"1,000 series x 1 h at 15 s ({samples:,} samples)")
    rate_p99 = await timed(
        "instant sum by (host) (rate(x[5m]))",
        args.runs,
        lambda: engine.instant("sum by (host) (rate(x[5m]))", end),
    )
    await timed(
        "range 1 h / 60 s sum by (host) (rate(x[5m]))",
        args.runs,
        lambda: engine.range("sum by (host) (rate(x[5m]))", end - HOUR_MS + 300_000, end, 60_000),
    )

    day = MemorySource()
    samples = counters(day, 100, 10, 24 * HOUR_MS, seed=2)
    engine = Engine(day)
    end = 24 * HOUR_MS - 1
    start = end - 24 * HOUR_MS + 60_000
    print(f"100 series x 24 h at 15 s ({samples:,} samples), query_range 24 h at 60 s steps")
    range_p99 = []
    for query in ("x", "rate(x[5m])", "sum by (host) (rate(x[5m]))"):

        async def evaluate(q: str = query) -> object:
            return await engine.range(q, start, end, 60_000)

        range_p99.append(await timed(f"{query} (evaluation)", args.runs, evaluate))

        async def with_json(q: str = query) -> bytes:
            return orjson.dumps((await engine.range(q, start, end, 60_000)).to_prometheus())

        await timed(f"{query} (evaluation + JSON body)", args.runs, with_json)

    print(
        f"floors: rate over 1,000 series p99 {rate_p99:.1f} ms (≤ {FLOOR_RATE_P99_MS}); "
        f"24 h range p99 {max(range_p99):.1f} ms (≤ {FLOOR_RANGE_24H_P99_MS}, evaluation)"
    )


if __name__ == "__main__":
    asyncio.run(main())
