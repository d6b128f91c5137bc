"""Buckets made from compacted blocks are kept, and a block rewritten by late samples is
bucketed again: cached answers always equal fresh ones."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from services.metrics.buckets import BucketCache, BucketRows
from services.metrics.promql.source import LabelMatcher, MatchOp, Want
from services.metrics.series_source import DuckSeriesSource
from services.metrics.settings import MetricsSettings
from services.metrics.store import MetricsStore
from shared.events import Sample
from tests.metrics.conftest import batch, series

H0 = 1_699_999_200.0  # a whole hour
H0_MS = int(H0 * 1000)
HOUR_MS = 3_600_000
UP = [LabelMatcher("__name__", MatchOp.EQUAL, "up")]


async def one_minute(source: DuckSeriesSource, want: Want) -> dict[str, list[float]]:
    found = await source.select(
        UP, H0_MS, H0_MS + 3 * HOUR_MS - 1, step_ms=60_000, range_ms=60_000, want=want
    )
    return {s.labels["host"]: s.values.tolist() for s in found}


async def test_cached_buckets_answer_as_fresh_ones_until_a_block_is_rewritten(
    store: MetricsStore,
) -> None:
    for seq, host in enumerate(("a", "b"), start=1):
        await store.store(seq, [batch(series("up", 3 * 360, H0, {"host": host}, every_s=10))])
    await store.compact(H0 + 2.5 * 3600)  # two blocks compacted, the third hot
    source = DuckSeriesSource(store, clock=lambda: H0 + 4 * 3600)
    cache = store.core.bucket_cache
    assert len(cache) == 0
    first = await one_minute(source, Want.MAX)
    assert len(cache) == 2  # the two compacted blocks, for every series
    assert await one_minute(source, Want.MAX) == first
    assert first["a"][:3] == [5.0, 11.0, 17.0]
    assert len(first["a"]) == 180

    # a late sample lands in the first block, which is compacted again
    late = Sample(name="up", value=1e6, timestamp=H0 + 65, labels={"host": "a"})
    await store.store(3, [batch([late])])
    await store.compact(H0 + 2.5 * 3600)
    after = await one_minute(source, Want.MAX)
    assert after["a"][1] == 1e6
    assert after["b"] == first["b"]
    counts = await one_minute(source, Want.COUNT)
    assert counts["a"][1] == 7.0 and set(counts["b"]) == {6.0}


def rows(count: int) -> BucketRows:
    ids = np.zeros(count, dtype=np.uint32)
    ts = np.arange(count, dtype=np.int64) * 10_000
    return BucketRows.of_samples(ids, ts, np.ones(count), 10_000)


def test_the_cache_keeps_to_its_size_least_recently_used_first() -> None:
    one = rows(100)
    cache = BucketCache(max_bytes=int(one.nbytes * 2.5))
    cache.put("a", one)
    cache.put("b", rows(100))
    assert cache.get("a") is one  # "a" is now the most recent
    cache.put("c", rows(100))
    assert cache.get("b") is None
    assert cache.get("a") is one and cache.get("c") is not None
    assert cache.used <= cache.max_bytes
    cache.put("huge", rows(1_000))  # larger than the whole cache: not kept
    assert cache.get("huge") is None and len(cache) == 2


async def test_stored_rollups_are_read_again_once_more_blocks_expire(tmp_path: Path) -> None:
    store = MetricsStore(tmp_path / "metrics.duckdb", MetricsSettings(), raw_retention_s=7200)
    await store.open()
    try:
        await store.store(1, [batch(series("up", 5 * 360, H0, {"host": "a"}, every_s=10))])
        now = H0 + 5 * 3600 + 700
        await store.compact(now)
        await store.apply_retention(H0 + 3 * 3600)  # the first hour leaves raw retention
        source = DuckSeriesSource(store, clock=lambda: H0 + 5 * 3600)

        async def minutes() -> list[float]:
            (found,) = await source.select(
                UP, H0_MS, H0_MS + 5 * HOUR_MS - 1, step_ms=60_000, range_ms=60_000, want=Want.MAX
            )
            return found.values.tolist()

        expected = [float(6 * n + 5) for n in range(300)]
        assert await minutes() == expected
        await store.apply_retention(H0 + 4 * 3600)  # one more hour moves into the rollups
        assert len(store.core.tables().raw) == 3  # of five
        assert await minutes() == expected
    finally:
        await store.close()
