"""The PromQL engine on the DuckDB store answers as on the same samples held in memory,
across compacted and hot blocks."""

from __future__ import annotations

import random

import pytest

from services.metrics.promql import Engine
from services.metrics.series_source import DuckSeriesSource
from services.metrics.store import MetricsStore
from shared.events import Sample
from tests.metrics.conftest import batch
from tests.metrics.promql.memory_source import MemorySource

H0 = 1_699_999_200  # a whole hour
H0_MS = H0 * 1000

QUERIES = [
    'requests_total{host=~"a|b"}',
    "sum by (host) (rate(requests_total[1m]))",
    "max_over_time(latency_ms[30s])",
    "topk(2, avg_over_time(latency_ms[1m]))",
    "increase(requests_total[45s]) > 20",
]


async def filled(store: MetricsStore) -> MemorySource:
    rng = random.Random(4)
    memory = MemorySource()
    seq = 0
    for host in ("a", "b", "c"):
        for name, counter in (("requests_total", True), ("latency_ms", False)):
            labels = {"host": host, "job": "api"}
            value, samples, ts_ms, values = 0.0, [], [], []
            for n in range(3 * 360):
                value = value + rng.randint(0, 9) if counter else round(rng.uniform(1, 500), 1)
                ts = H0 + n * 10
                samples.append(Sample(name=name, value=value, timestamp=ts, labels=labels))
                ts_ms.append(ts * 1000)
                values.append(value)
            seq += 1
            await store.store(seq, [batch(samples)])
            memory.add({"__name__": name, **labels}, ts_ms, values)
    await store.compact(H0 + 2.5 * 3600)  # two hours compacted, the third hot
    assert len(store.core.tables().raw) == 2
    return memory


@pytest.mark.parametrize("query", QUERIES)
async def test_range_queries_over_raw_samples_match_the_memory_source(
    store: MetricsStore, query: str
) -> None:
    memory = await filled(store)
    on_store = Engine(DuckSeriesSource(store, clock=lambda: H0 + 4 * 3600))
    in_memory = Engine(memory)
    start, end, step = H0_MS + 600_000, H0_MS + 3 * 3_600_000 - 1, 15_000
    expected = (await in_memory.range(query, start, end, step)).to_prometheus()
    assert expected["result"], "the query should select something"
    assert (await on_store.range(query, start, end, step)).to_prometheus() == expected


async def test_instant_queries_match_the_memory_source(store: MetricsStore) -> None:
    memory = await filled(store)
    on_store = Engine(DuckSeriesSource(store, clock=lambda: H0 + 4 * 3600))
    in_memory = Engine(memory)
    for at in (H0_MS + 3_600_000, H0_MS + 2 * 3_600_000 + 123_000):
        # a plain selector reads the 5 m rollups' last values and their times (the
        # lookback is 5 m): the same answer; windows under a minute read raw samples
        for query in ("requests_total", "rate(requests_total[50s])", "latency_ms[30s]"):
            expected = (await in_memory.instant(query, at)).to_prometheus()
            assert (await on_store.instant(query, at)).to_prometheus() == expected, query
