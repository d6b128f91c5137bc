"""The compacted blocks an SLO reads, kept in memory: blocks read together in several
queries, a window's blocks kept joined, and what must make a cached copy go stale (a
late sample rewriting a block, a late sample still hot beside its compacted block)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from services.metrics import reads
from services.metrics.settings import MetricsSettings
from services.metrics.slo import blocks
from services.metrics.slo.blocks import BlockCache
from services.metrics.slo.reader import SloReader
from services.metrics.store import MetricsStore
from shared.events import Sample, SamplesIngested
from shared.sloconfig import Events

H0 = 1_699_999_200.0  # a whole hour
HOUR = 3600.0
COUNTERS = Events("counters", good="ok_total", total="all_total")
BAD = Events("counters", good="err_total", total="all_total", bad_counter=True)


def counters(start: float, count: int, errors_at: set[int], every_s: float = 60.0) -> list[Sample]:
    """All requests +10 a minute, of them 1 an error at the minutes in ``errors_at``."""
    samples = []
    errors = 0.0
    for i in range(count):
        errors += 1.0 if i in errors_at else 0.0
        at = start + i * every_s
        samples.append(Sample(name="all_total", value=10.0 * i, timestamp=at, labels={}))
        samples.append(Sample(name="ok_total", value=10.0 * i - errors, timestamp=at, labels={}))
        samples.append(Sample(name="err_total", value=errors, timestamp=at, labels={}))
    return samples


def batch(samples: list[Sample]) -> SamplesIngested:
    return SamplesIngested(aggregate_id="t", samples=samples, received_at=H0)


@pytest.mark.parametrize("literal_ids", [1000, 0])  # ids in the SQL, or as a parameter
async def test_many_blocks_read_in_parts_and_then_from_the_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, literal_ids: int
) -> None:
    monkeypatch.setattr(blocks, "BLOCKS_PER_QUERY", 2)  # five blocks: three queries
    monkeypatch.setattr(blocks, "LITERAL_IDS", literal_ids)
    store = MetricsStore(tmp_path / "m.duckdb", MetricsSettings(), 1e12)
    await store.open()
    try:
        await store.store(1, [batch(counters(H0, 300, errors_at={7, 130, 131, 299}))])
        now = H0 + 6 * HOUR
        await store.compact(now)
        assert len(store.core.tables().raw) == 5 and not store.core.tables().hot
        cache = BlockCache()
        reader = SloReader(store, clock=lambda: now, cache=cache)
        start_ms, end_ms = int(H0 * 1000), int(now * 1000)
        for events in (COUNTERS, BAD, COUNTERS):  # cold, then the joined window
            timeline = await reader.timeline(events, start_ms, end_ms)
            # the first minute is the baseline: 299 increases of 10, 4 errors among them
            assert timeline.counts(start_ms, end_ms) == (2986.0, 2990.0)
            hour = int(HOUR * 1000)
            # the third hour (minutes 120 to 179) holds the errors at 130 and 131
            assert timeline.counts(start_ms + 2 * hour, start_ms + 3 * hour) == (598.0, 600.0)
            assert timeline.counts(start_ms + 2 * hour, start_ms + 3 * hour + 1) == (608.0, 610.0)
        # two selections of two series: each one's 600 samples joined
        samples = reads.Columns(
            np.zeros(600, np.uint32), np.zeros(600, np.int64), np.zeros(600, np.float64)
        )
        assert cache.used == 2 * BlockCache.size(samples)
        # an hour later: a sixth block, the window an hour on (the first block left out)
        sixth_hour = counters(H0, 360, errors_at={7, 130, 131, 299, 330})[3 * 300 :]
        await store.store(2, [batch(sixth_hour)])
        later = now + HOUR
        await store.compact(later)
        assert len(store.core.tables().raw) == 6
        reader.clock = lambda: later
        start_ms, end_ms = int((H0 + HOUR) * 1000), int(later * 1000)
        for events in (COUNTERS, BAD):
            timeline = await reader.timeline(events, start_ms, end_ms)
            # minutes 60 to 359: 300 increases, errors at 130, 131, 299 and 330
            assert timeline.counts(start_ms, end_ms) == (2996.0, 3000.0)
            hour = int(HOUR * 1000)
            assert timeline.counts(start_ms + 3 * hour, end_ms) == (1198.0, 1200.0)
    finally:
        await store.close()


async def test_a_late_sample_rewriting_a_block_is_seen_in_a_warm_window(tmp_path: Path) -> None:
    store = MetricsStore(tmp_path / "m.duckdb", MetricsSettings(), 1e12)
    await store.open()
    try:
        await store.store(1, [batch(counters(H0, 180, errors_at=set()))])
        now = H0 + 4 * HOUR
        await store.compact(now)
        reader = SloReader(store, clock=lambda: now)
        start_ms, end_ms = int(H0 * 1000), int(now * 1000)
        for _ in range(2):
            timeline = await reader.timeline(COUNTERS, start_ms, end_ms)
            assert timeline.counts(start_ms, end_ms) == (1790.0, 1790.0)
        # a sample between two of the middle hour's (minutes 90 and 91): of 5 more
        # requests, 4 good
        late = H0 + HOUR + 30 * 60 + 30
        await store.store(
            2,
            [
                batch(
                    [
                        Sample(name="all_total", value=905.0, timestamp=late, labels={}),
                        Sample(name="ok_total", value=904.0, timestamp=late, labels={}),
                    ]
                )
            ],
        )
        # still hot beside its compacted block: read from both, in time order
        assert store.core.tables().hot
        timeline = await reader.timeline(COUNTERS, start_ms, end_ms)
        late_ms = int(late * 1000)
        assert timeline.counts(late_ms, late_ms + 1) == (4.0, 5.0)  # 900 -> 905, 900 -> 904
        # compacted into the block, under a new checkpoint: the joined window is stale
        await store.compact(now)
        assert not store.core.tables().hot
        timeline = await reader.timeline(COUNTERS, start_ms, end_ms)
        assert timeline.counts(late_ms, late_ms + 1) == (4.0, 5.0)
        assert timeline.counts(start_ms, end_ms) == (1790.0, 1790.0)
    finally:
        await store.close()


async def test_a_late_duplicate_timestamp_keeps_the_later_value(tmp_path: Path) -> None:
    store = MetricsStore(tmp_path / "m.duckdb", MetricsSettings(), 1e12)
    await store.open()
    try:
        await store.store(1, [batch(counters(H0, 120, errors_at=set()))])
        now = H0 + 3 * HOUR
        await store.compact(now)
        reader = SloReader(store, clock=lambda: now)
        start_ms, end_ms = int(H0 * 1000), int(now * 1000)
        assert (await reader.timeline(COUNTERS, start_ms, end_ms)).counts(start_ms, end_ms) == (
            1190.0,
            1190.0,
        )
        # minute 10 stored again with fewer good requests: the later value counts
        again = H0 + 10 * 60
        await store.store(
            2, [batch([Sample(name="ok_total", value=95.0, timestamp=again, labels={})])]
        )
        timeline = await reader.timeline(COUNTERS, start_ms, end_ms)
        at = int(again * 1000)
        assert timeline.counts(at, at + 1) == (5.0, 10.0)  # 90 -> 95
        assert timeline.counts(at + 1, at + 60_001) == (10.0, 10.0)  # 95 -> 110: 15, capped
    finally:
        await store.close()


def test_a_new_window_of_the_same_series_drops_the_oldest() -> None:
    cache = BlockCache()
    piece = reads.Columns(np.zeros(10, np.uint32), np.arange(10, dtype=np.int64), np.zeros(10))
    windows = [((0, 1), (n, 1)) for n in range(3)]
    for window in windows:
        cache.put(((1,), window), piece)
    cache.put(((2,), windows[0]), piece)
    assert cache.get(((1,), windows[0])) is None
    assert cache.get(((1,), windows[1])) is not None
    assert cache.get(((1,), windows[2])) is not None
    assert [window for window, _ in cache.windows((1,))] == windows[1:]
    assert cache.get(((2,), windows[0])) is not None
    assert cache.used == 3 * BlockCache.size(piece)
