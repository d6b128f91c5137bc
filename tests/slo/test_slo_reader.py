"""An SLO's events read from a real store: hot and compacted blocks, a block rewritten by
late samples, and stretches older than the raw samples read from the 1 m rollups."""

from __future__ import annotations

from pathlib import Path

from services.metrics.settings import MetricsSettings
from services.metrics.slo.reader import SloReader
from services.metrics.store import MetricsStore
from shared.events import Sample, SamplesIngested
from shared.sloconfig import Events

H0 = 1_699_999_200.0  # a whole hour
HOUR = 3600.0
RUNS = Events("runs", total='synthetic_check_up{check="home"}')
COUNTERS = Events("counters", good="ok_total", total="all_total")


def runs(start: float, count: int, down: set[int], every_s: float = 60.0) -> SamplesIngested:
    samples = [
        Sample(
            name="synthetic_check_up",
            value=0.0 if i in down else 1.0,
            timestamp=start + i * every_s,
            labels={"check": "home"},
        )
        for i in range(count)
    ]
    return SamplesIngested(aggregate_id="t", samples=samples, received_at=start)


async def test_hot_and_compacted_blocks_and_a_rewritten_block(tmp_path: Path) -> None:
    store = MetricsStore(tmp_path / "m.duckdb", MetricsSettings(), 1e12)
    await store.open()
    try:
        await store.store(1, [runs(H0, 180, down={5, 6, 70})])  # three hours, one a minute
        await store.compact(H0 + 2 * HOUR + 1200)  # the first two hours compacted
        assert len(store.core.tables().raw) == 2 and store.core.tables().hot
        reader = SloReader(store, clock=lambda: H0 + 3 * HOUR)
        start_ms, end_ms = int(H0 * 1000), int((H0 + 3 * HOUR) * 1000)
        assert (await reader.timeline(RUNS, start_ms, end_ms)).counts(start_ms, end_ms) == (
            177,
            180,
        )
        assert (await reader.timeline(RUNS, start_ms, end_ms)).counts(start_ms, end_ms) == (
            177,
            180,
        )
        # late runs in the first hour rewrite its block: the cached copy is not used
        await store.store(2, [runs(H0 + 30, 10, down=set(range(10)))])
        await store.compact(H0 + 2 * HOUR + 1200)
        timeline = await reader.timeline(RUNS, start_ms, end_ms)
        assert timeline.counts(start_ms, end_ms) == (177, 190)
        # a part of the range only
        hour = int(HOUR * 1000)
        assert timeline.counts(start_ms + hour, start_ms + 2 * hour) == (59, 60)
    finally:
        await store.close()


async def test_older_stretches_come_exactly_from_the_rollups(tmp_path: Path) -> None:
    store = MetricsStore(tmp_path / "m.duckdb", MetricsSettings(), 2 * HOUR)
    await store.open()
    try:
        await store.store(1, [runs(H0, 360, down={3, 4, 200}, every_s=20)])  # two hours
        counters = [
            Sample(name=name, value=value * i, timestamp=H0 + 10 * i, labels={})
            for i in range(720)
            for name, value in (("all_total", 10.0), ("ok_total", 9.0))
        ]
        await store.store(2, [SamplesIngested(aggregate_id="t", samples=counters, received_at=H0)])
        now = H0 + 5 * HOUR
        await store.compact(now)
        await store.apply_retention(now)
        assert not store.core.tables().raw  # only the rollups are left
        reader = SloReader(store, clock=lambda: now)
        start_ms, end_ms = int(H0 * 1000), int(now * 1000)
        runs_seen = await reader.timeline(RUNS, start_ms, end_ms)
        assert runs_seen.counts(start_ms, end_ms) == (357, 360)
        # counters from each minute's last value: the first minute is the baseline
        seen = await reader.timeline(COUNTERS, start_ms, end_ms)
        first_last = 5  # the first minute's last sample, at 50 s
        assert seen.counts(start_ms, end_ms) == (
            9.0 * (719 - first_last),
            10.0 * (719 - first_last),
        )
    finally:
        await store.close()
