"""The PromQL engine's source over the store: matchers, resolution choice, arrays."""

from __future__ import annotations

import numpy as np

from services.metrics.promql.source import LabelMatcher, MatchOp, Want
from services.metrics.series_source import DuckSeriesSource
from services.metrics.store import MetricsStore
from shared.events import Sample
from tests.metrics.conftest import batch, series

H0 = 1_699_999_200.0  # a whole hour
HOUR_MS = 3_600_000
H0_MS = int(H0 * 1000)
NAME = "__name__"


def m(name: str, op: str, value: str) -> LabelMatcher:
    return LabelMatcher(name, MatchOp(op), value)


async def filled(store: MetricsStore) -> DuckSeriesSource:
    seq = 0
    for host, job in (("web-1", "api"), ("web-2", "api"), ("db-1", "sql")):
        seq += 1
        await store.store(
            seq, [batch(series("up", 3 * 360, H0, {"host": host, "job": job}, every_s=10))]
        )
    seq += 1
    await store.store(seq, [batch(series("other", 10, H0, {"host": "web-1"}, every_s=10))])
    await store.compact(H0 + 2.5 * 3600)  # two hours compacted, the third still hot
    return DuckSeriesSource(store, clock=lambda: H0 + 4 * 3600)


async def test_matchers_select_series_fully_anchored(store: MetricsStore) -> None:
    source = await filled(store)
    end = H0_MS + 3 * HOUR_MS

    async def hosts(*matchers: LabelMatcher) -> list[str]:
        found = await source.series(list(matchers), H0_MS, end)
        return sorted(labels.get("host", "") for labels in found)

    assert await hosts(m(NAME, "=", "up")) == ["db-1", "web-1", "web-2"]
    assert await hosts(m(NAME, "=", "up"), m("host", "=~", "web")) == []
    assert await hosts(m(NAME, "=", "up"), m("host", "=~", "web-.*")) == ["web-1", "web-2"]
    assert await hosts(m(NAME, "=", "up"), m("job", "!=", "api")) == ["db-1"]
    assert await hosts(m(NAME, "=", "up"), m("host", "!~", "web-.|x")) == ["db-1"]
    assert await hosts(m("host", "=", "web-1")) == ["web-1", "web-1"]
    assert await hosts(m(NAME, "=", "up"), m("zone", "=", "")) == ["db-1", "web-1", "web-2"]
    assert await hosts(m(NAME, "=", "up")) == await hosts(m(NAME, "=~", "u."))
    assert await source.series([m(NAME, "=", "up")], end + HOUR_MS, end + 2 * HOUR_MS) == []
    assert await source.label_names([], H0_MS, end) == [NAME, "host", "job"]
    assert await source.label_values("job", [m(NAME, "=", "up")], H0_MS, end) == ["api", "sql"]


async def test_raw_samples_come_back_as_arrays_across_compacted_and_hot_blocks(
    store: MetricsStore,
) -> None:
    source = await filled(store)
    start, end = H0_MS + HOUR_MS // 2, H0_MS + 3 * HOUR_MS
    found = await source.select(
        [m(NAME, "=", "up"), m("job", "=", "api")],
        start,
        end,
        step_ms=15_000,
        range_ms=30_000,
        want=Want.LAST,
    )
    assert sorted(s.labels["host"] for s in found) == ["web-1", "web-2"]
    for data in found:
        assert data.labels[NAME] == "up"
        assert data.ts.dtype == np.int64 and data.values.dtype == np.float64
        expected_ts = np.arange(start, H0_MS + 3 * HOUR_MS, 10_000, dtype=np.int64)
        assert np.array_equal(data.ts, expected_ts)
        assert np.array_equal(data.values, (expected_ts - H0_MS) / 10_000)


async def test_rollups_answer_when_step_and_range_allow_them(store: MetricsStore) -> None:
    source = await filled(store)
    start, end = H0_MS, H0_MS + 3 * HOUR_MS - 1
    matchers = [m(NAME, "=", "up"), m("host", "=", "db-1")]
    (last,) = await source.select(
        matchers, start, end, step_ms=300_000, range_ms=600_000, want=Want.LAST
    )
    # 5 m buckets: stamped at each bucket's newest sample, with its value
    assert len(last.ts) == 36
    assert np.array_equal(last.ts, H0_MS + np.arange(36) * 300_000 + 290_000)
    assert np.array_equal(last.values, np.arange(36) * 30 + 29.0)
    (top,) = await source.select(
        matchers, start, end, step_ms=3_600_000, range_ms=3_600_000, want=Want.MAX
    )
    assert np.array_equal(top.values, [359.0, 719.0, 1079.0])
    (avg,) = await source.select(
        matchers, start, end, step_ms=60_000, range_ms=60_000, want=Want.AVG
    )
    assert len(avg.ts) == 180
    assert avg.values[0] == 2.5
    (count,) = await source.select(
        matchers, start, end, step_ms=60_000, range_ms=60_000, want=Want.COUNT
    )
    assert set(count.values.tolist()) == {6.0}


async def test_a_stored_rollup_and_late_samples_of_its_bucket_make_one_point(
    store: MetricsStore,
) -> None:
    await store.store(1, [batch(series("up", 360, H0, {"host": "a"}, every_s=10))])
    await store.compact(H0 + 2 * 3600)
    late = [
        Sample(name="up", value=-5.0, timestamp=H0 + 5, labels={"host": "a"}),
        Sample(name="up", value=999.0, timestamp=H0 + 3599, labels={"host": "a"}),
    ]
    await store.store(2, [batch(late)])  # hot again, beside the stored 1 h rollup
    source = DuckSeriesSource(store, clock=lambda: H0 + 3 * 3600)
    end = H0_MS + HOUR_MS - 1
    matchers = [m(NAME, "=", "up")]
    answers = {}
    for want in (Want.MIN, Want.MAX, Want.COUNT, Want.LAST, Want.SUM):
        (data,) = await source.select(
            matchers, H0_MS, end, step_ms=HOUR_MS, range_ms=HOUR_MS, want=want
        )
        assert data.ts.tolist() == [H0_MS + 3_599_000]
        answers[want] = data.values.tolist()
    assert answers == {
        Want.MIN: [-5.0],
        Want.MAX: [999.0],
        Want.COUNT: [362.0],
        Want.LAST: [999.0],
        Want.SUM: [sum(range(360)) - 5.0 + 999.0],
    }
