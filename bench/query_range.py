"""PromQL over the real DuckDB store, timed up to the HTTP response body.

Three stores are filled through the store's own API (``store_sequenced``, then its
compaction and retention passes, as the running service does them):

- 100 series x 24 h scraped every 10 s: ``query_range`` over 24 h at 60 s steps;
- 100 series x 30 d scraped every 60 s, raw retention 15 d (older blocks rolled up into
  1 m / 5 m rows and dropped, as the retention pass does): ``query_range`` over 30 d at
  1 h steps;
- 1,000 counters (50 hosts) x 1 h scraped every 15 s: instant
  ``sum by (host) (rate(x[5m]))``.

Every query is timed once first (buckets of compacted blocks not cached yet), then
``--runs`` times (p50/p99); ``--no-cache`` keeps the cache off throughout.
Every timing covers evaluation and the response body: ``{"status":"success","data":...}``
as bytes, the way the HTTP layer sends it (``prometheus_body``). ``--legacy-body`` also
times ``orjson.dumps`` of ``Result.to_prometheus()`` for comparison.

    .venv/bin/python bench/query_range.py
    .venv/bin/python bench/query_range.py --runs 100 --legacy-body
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import numpy as np
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from services.metrics.promql import Engine, prometheus_body
from services.metrics.promql.result import Result
from services.metrics.series_source import DuckSeriesSource
from services.metrics.settings import MetricsSettings
from services.metrics.store import MetricsStore
from shared.events import Sample, SamplesIngested

HOUR_S = 3600
DAY_S = 24 * HOUR_S
T0 = 1_767_225_600  # 2026-01-01T00:00:00Z, a whole day
FLOORS_MS = {"24h": 50.0, "30d": 100.0, "rate": 100.0}
BATCH = 20_000


def series_values(rng: np.random.Generator, count: int, counter: bool) -> np.ndarray:
    if counter:
        return np.cumsum(rng.integers(0, 20, count)).astype(np.float64)
    return np.round(rng.uniform(0, 100, count), 2)


async def fill(
    store: MetricsStore,
    count: int,
    hosts: int,
    start_s: int,
    span_s: int,
    every_s: int,
    counter: bool,
    seed: int,
) -> int:
    """``count`` series over ``span_s``, written in time order in batches like the
    service's, each hour compacted once it is past the grace period."""
    rng = np.random.default_rng(seed)
    steps = np.arange(start_s, start_s + span_s, every_s, dtype=np.float64)
    labels = [{"host": f"h{i % hosts}", "instance": f"i{i}"} for i in range(count)]
    values = [series_values(rng, len(steps), counter) for _ in range(count)]
    jitter = [rng.integers(0, 500, len(steps)) / 1000 for _ in range(count)]
    seq = 0
    pending: list[Sample] = []
    hour_end = start_s + HOUR_S
    for n, ts in enumerate(steps.tolist()):
        for i in range(count):
            pending.append(
                Sample(
                    name="x",
                    value=float(values[i][n]),
                    timestamp=ts + float(jitter[i][n]),
                    labels=labels[i],
                )
            )
        due = ts >= hour_end + 700
        if len(pending) >= BATCH or n == len(steps) - 1 or due:
            seq += 1
            batch = SamplesIngested.of_validated(pending, aggregate_id="bench", received_at=ts + 1)
            await store.store(seq, [batch])
            pending = []
        if due:
            await store.compact(ts)
            await store.apply_retention(ts)
            hour_end += HOUR_S
    return count * len(steps)


NO_CACHE = False


async def opened(path: Path, raw_retention_s: float) -> MetricsStore:
    store = MetricsStore(path, MetricsSettings(), raw_retention_s)
    await store.open()
    if NO_CACHE:
        store.core.bucket_cache.max_bytes = 0
    return store


def percentiles(times: list[float]) -> tuple[float, float]:
    return float(np.percentile(times, 50)), float(np.percentile(times, 99))


async def timed(label: str, runs: int, call: Callable[[], Awaitable[object]]) -> float:
    await call()  # warm up
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        await call()
        times.append((time.perf_counter() - start) * 1000)
    p50, p99 = percentiles(times)
    print(f"  {label:<64} p50 {p50:7.1f} ms   p99 {p99:7.1f} ms")
    return p99


def legacy_body(result: Result) -> bytes:
    return orjson.dumps({"status": "success", "data": result.to_prometheus()})


async def measure(
    label: str,
    runs: int,
    evaluate: Callable[[], Awaitable[Result]],
    legacy: bool,
) -> float:
    began = time.perf_counter()
    result = await evaluate()
    body = prometheus_body(result)
    first = (time.perf_counter() - began) * 1000
    assert orjson.loads(body) == orjson.loads(legacy_body(result)), label
    points = sum(len(s.get("values", [])) or 1 for s in orjson.loads(body)["data"]["result"])
    await timed(f"{label} (evaluation)", runs, evaluate)

    async def with_body() -> bytes:
        return prometheus_body(await evaluate())

    p99 = await timed(f"{label} (+ body, {points:,} points, {len(body):,} B)", runs, with_body)
    print(f"  {label + ' (first run, + body)':<64} {first:7.1f} ms")
    if legacy:

        async def with_legacy_body() -> bytes:
            return legacy_body(await evaluate())

        await timed(f"{label} (+ to_prometheus + orjson)", runs, with_legacy_body)
    return p99


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--legacy-body", action="store_true")
    parser.add_argument(
        "--no-cache", action="store_true", help="every query buckets compacted blocks anew"
    )
    args = parser.parse_args()
    global NO_CACHE
    NO_CACHE = args.no_cache
    worst: dict[str, float] = {}

    with tempfile.TemporaryDirectory() as tmp:
        began = time.perf_counter()
        day = await opened(Path(tmp) / "day.duckdb", 15 * DAY_S)
        samples = await fill(day, 100, 10, T0, DAY_S, 10, counter=False, seed=1)
        now = T0 + DAY_S
        print(
            f"100 series x 24 h at 10 s: {samples:,} samples "
            f"(filled in {time.perf_counter() - began:.0f} s)"
        )
        engine = Engine(DuckSeriesSource(day, clock=lambda: now))
        end_ms = (now - 60) * 1000
        start_ms = end_ms - DAY_S * 1000
        for query in ("x", "avg_over_time(x[5m])", "max by (host) (x)"):
            worst[f"24h {query}"] = await measure(
                f"24 h / 60 s  {query}",
                args.runs,
                lambda q=query: engine.range(q, start_ms, end_ms, 60_000),  # type: ignore[misc]
                args.legacy_body,
            )
        await day.close()

        began = time.perf_counter()
        month = await opened(Path(tmp) / "month.duckdb", 15 * DAY_S)
        samples = await fill(month, 100, 10, T0, 30 * DAY_S, 60, counter=True, seed=2)
        now = T0 + 30 * DAY_S
        await month.apply_retention(now)
        print(
            f"100 series x 30 d at 60 s: {samples:,} samples, raw kept 15 d "
            f"(filled in {time.perf_counter() - began:.0f} s)"
        )
        engine = Engine(DuckSeriesSource(month, clock=lambda: now))
        end_ms = (now - HOUR_S) * 1000
        start_ms = end_ms - 30 * DAY_S * 1000 + HOUR_S * 1000
        for query in ("x", "rate(x[1h])", "sum by (host) (increase(x[1h]))"):
            worst[f"30d {query}"] = await measure(
                f"30 d / 1 h   {query}",
                args.runs,
                lambda q=query: engine.range(q, start_ms, end_ms, 3_600_000),  # type: ignore[misc]
                args.legacy_body,
            )
        await month.close()

        began = time.perf_counter()
        hour = await opened(Path(tmp) / "hour.duckdb", 15 * DAY_S)
        samples = await fill(hour, 1_000, 50, T0, HOUR_S, 15, counter=True, seed=3)
        now = T0 + HOUR_S
        print(
            f"1,000 series x 1 h at 15 s: {samples:,} samples "
            f"(filled in {time.perf_counter() - began:.0f} s)"
        )
        engine = Engine(DuckSeriesSource(hour, clock=lambda: now))
        query = "sum by (host) (rate(x[5m]))"
        worst["rate"] = await measure(
            f"instant {query}",
            args.runs,
            lambda: engine.instant(query, now * 1000),
            args.legacy_body,
        )
        await hour.close()

    print("floors (p99 with the body):")
    for key, p99 in worst.items():
        floor = FLOORS_MS["rate" if key == "rate" else key[:3]]
        verdict = "ok" if p99 <= floor else "ABOVE"
        print(f"  {key:<40} {p99:7.1f} ms  (≤ {floor:.0f})  {verdict}")


if __name__ == "__main__":
    asyncio.run(main())
