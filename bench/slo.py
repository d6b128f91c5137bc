"""An SLO over 30 days of 10-second data: how long its figures take to compute.

Writes two counters (all requests, and errors: about 0.05 % of them, with a few bad
hours) every 10 s for ``--days`` days through the real store (compacted as the service
would), then times what ``GET /api/monitoring/sla/metrics`` asks of the metrics service
for that SLO: its events read from the store, the 30-day figures, burn rates over the
seven alert windows and violations in 5-minute steps. Twice: with the raw samples kept
for the whole window, and with the default 15-day raw retention (the older half read
from the 1-minute rollups).

    python bench/slo.py --days 30 --repeat 101
"""

from __future__ import annotations

import argparse
import asyncio
import math
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from services.metrics.settings import MetricsSettings
from services.metrics.slo.reader import SloReader
from services.metrics.slo.service import SloBook
from services.metrics.store import MetricsStore
from shared.config import parse_config
from shared.events import Sample, SamplesIngested

STEP_S = 10
BATCH = 10_000
CONFIG = """
slos:
  - name: api
    objective: 99.9
    window: 30d
    sli:
      availability:
        bad: http_errors_total
        total: http_requests_total
"""


async def fill(store: MetricsStore, start: float, days: int) -> int:
    samples: list[Sample] = []
    seq = 0
    total = errors = 0.0
    count = days * 86400 // STEP_S
    for n in range(count):
        at = start + n * STEP_S
        total += 100
        bad_hour = (n * STEP_S // 3600) % 97 == 0
        errors += 5 if bad_hour else (1 if n % 20 == 0 else 0)
        samples.append(Sample(name="http_requests_total", value=total, timestamp=at, labels={}))
        samples.append(Sample(name="http_errors_total", value=errors, timestamp=at, labels={}))
        if len(samples) >= BATCH:
            seq += 1
            await store.store(
                seq, [SamplesIngested(aggregate_id="bench", samples=samples, received_at=at)]
            )
            samples = []
        if n % 8640 == 0:
            await store.compact(at)
    if samples:
        seq += 1
        await store.store(
            seq, [SamplesIngested(aggregate_id="bench", samples=samples, received_at=start)]
        )
    return 2 * count


async def measure(path: Path, raw_days: float, days: int, repeat: int, now: float) -> list[float]:
    store = MetricsStore(path, MetricsSettings(), raw_days * 86400)
    await store.open()
    try:
        await store.compact(now)
        await store.apply_retention(now)
        config = parse_config(CONFIG)
        book = SloBook(config.slos, SloReader(store, lambda: now), clock=lambda: now)
        slo = config.slos[0]
        times = []
        answer = {}
        for _ in range(repeat):
            began = time.perf_counter()
            answer = await book.figures(slo, now - days * 86400, now, 300)
            times.append(time.perf_counter() - began)
        print(
            f"  events {answer['total']:,.0f}, SLI {answer['sli']:.5f}, budget left "
            f"{answer['budget_remaining']:.3f}, {len(answer['violations'])} violations"
        )
        return times
    finally:
        await store.close()


def rank(sorted_ms: list[float], share: float) -> float:
    """The nearest-rank percentile of sorted times."""
    return sorted_ms[max(0, math.ceil(share * len(sorted_ms)) - 1)]


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--repeat", type=int, default=101)
    args = parser.parse_args()
    now = float(int(time.time()) // 3600 * 3600)
    start = now - args.days * 86400
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "metrics.duckdb"
        store = MetricsStore(path, MetricsSettings(), 1e12)
        await store.open()
        began = time.perf_counter()
        written = await fill(store, start, args.days)
        await store.compact(now)
        await store.close()
        print(
            f"wrote {written:,} samples ({args.days} days at {STEP_S} s) "
            f"in {time.perf_counter() - began:.1f} s"
        )
        for label, raw_days in (
            ("raw samples for the whole window", 1e6),
            ("15-day raw retention", 15),
        ):
            print(f"{label}:")
            times = await measure(path, raw_days, args.days, args.repeat, now)
            first, ms = times[0] * 1000, sorted(t * 1000 for t in times[1:])
            print(
                f"  SLO figures: first (cold: every block read from the store) {first:.0f} ms; "
                f"then (blocks cached) median {statistics.median(ms):.1f} ms, "
                f"p95 {rank(ms, 0.95):.1f} ms, p99 {rank(ms, 0.99):.1f} ms, max {ms[-1]:.1f} ms "
                f"({len(ms)} runs)"
            )


if __name__ == "__main__":
    asyncio.run(main())
