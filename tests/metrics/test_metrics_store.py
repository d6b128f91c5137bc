"""The DuckDB samples store: exactly-once writes, queries, compaction, retention."""

from __future__ import annotations

import asyncio
from pathlib import Path

import duckdb
import numpy as np
import orjson
import pytest

from services.metrics.domain import SampleWindow
from services.metrics.settings import MetricsSettings
from services.metrics.store import MetricsStore
from shared.commands import QuerySamples
from shared.events import Sample, SampleBlock, UndecodableEvent, series_key
from tests.metrics.conftest import KEEP_ALL_S, batch, series

T0 = 1_700_000_000.0
H0 = 1_699_999_200.0  # a whole hour
HOUR = 3600.0


async def everything(store: MetricsStore) -> list[tuple[str, str, float, float]]:
    window = await store.query(QuerySamples(limit=100_000))
    return sorted(window.rows)


async def test_a_batch_is_stored_once_even_when_redelivered(store: MetricsStore) -> None:
    cpu = batch(series("cpu", 3, T0, {"host": "a"}))
    assert await store.store(1, [cpu]) is True
    assert await store.store(1, [cpu]) is False
    assert await store.stored_samples() == 3
    assert await store.last_seq() == 1
    window = await store.query(QuerySamples(name="cpu"))
    assert [s[3] for s in window.rows] == [0.0, 1.0, 2.0]


async def test_query_filters_by_name_labels_and_inclusive_time_range(store: MetricsStore) -> None:
    await store.store(1, [batch(series("cpu", 10, T0, {"host": "a", "dc": "x"}))])
    await store.store(2, [batch(series("cpu", 10, T0, {"host": "b", "dc": "x"}))])
    await store.store(3, [batch(series("mem", 10, T0, {"host": "a"}))])

    by_host = await store.query(QuerySamples(name="cpu", labels={"host": "a"}))
    assert len(by_host.rows) == 10
    assert {row[1] for row in by_host.rows} == {'{"dc":"x","host":"a"}'}

    both = await store.query(QuerySamples(name="cpu", labels={"dc": "x", "host": "b"}))
    assert len(both.rows) == 10
    nobody = await store.query(QuerySamples(name="cpu", labels={"host": "c"}))
    assert nobody == SampleWindow([], False)

    ranged = await store.query(
        QuerySamples(name="cpu", labels={"host": "a"}, start=T0 + 2, end=T0 + 4)
    )
    assert [row[2] for row in ranged.rows] == [T0 + 2, T0 + 3, T0 + 4]

    at_once = await store.query(QuerySamples(start=T0 + 9, end=T0 + 9))
    assert sorted(row[0] for row in at_once.rows) == ["cpu", "cpu", "mem"]


async def test_limit_keeps_the_newest_samples_newest_last(store: MetricsStore) -> None:
    await store.store(1, [batch(series("cpu", 10, T0, {"host": "a"}))])
    window = await store.query(QuerySamples(name="cpu", limit=3))
    assert [row[3] for row in window.rows] == [7.0, 8.0, 9.0]
    assert window.truncated is True
    exact = await store.query(QuerySamples(name="cpu", limit=10))
    assert exact.truncated is False
    assert len(exact.rows) == 10


async def test_awkward_label_values_round_trip(store: MetricsStore) -> None:
    labels = {"path": 'C:\\tmp\\"quoted"', "note": "it's {ü} 東京 🙂", "empty": "", "u": "ß"}
    await store.store(
        1, [batch([Sample(name="odd", value=-1.25e-300, timestamp=T0, labels=labels)])]
    )
    window = await store.query(QuerySamples(name="odd", labels={"path": labels["path"], "u": "ß"}))
    assert len(window.rows) == 1
    name, text, ts, value = window.rows[0]
    assert (name, ts, value) == ("odd", T0, -1.25e-300)
    assert orjson.loads(text) == labels


async def test_several_batches_in_one_transaction_advance_the_checkpoint_once(
    store: MetricsStore,
) -> None:
    first = batch(series("cpu", 2, T0, {}))
    second = batch(series("cpu", 3, T0 + 10, {}))
    assert await store.store(7, [first, second]) is True
    assert await store.last_seq() == 7
    assert await store.stored_samples() == 5
    assert await store.store(6, [first]) is False


async def test_a_columnar_block_is_stored_as_its_json_batch_would_be(tmp_path: Path) -> None:
    samples = [
        *series("cpu", 3, T0, {"host": "a", "dc": "x"}),
        *series("mem", 2, T0, {}),
        *series("cpu", 2, T0 + 100, {"dc": "x", "host": "a"}),
    ]
    stores = []
    for name in ("json", "block"):
        store = MetricsStore(tmp_path / f"{name}.duckdb", MetricsSettings(), KEEP_ALL_S)
        await store.open()
        stores.append(store)
    as_json, as_block = stores
    try:
        await as_json.store(1, [batch(samples, received_at=T0)])
        block = SampleBlock.of_samples(samples, T0, aggregate_id="api")
        # a block and a JSON batch in one transaction, the block redelivered after
        assert await as_block.store_sequenced([(1, block), (2, batch(series("up", 1, T0, {})))])
        assert await as_block.store_sequenced([(1, block)]) is False
        assert await as_block.stored_samples() == 8
        assert await everything(as_block) == sorted(
            [*await everything(as_json), ("up", "{}", T0, 0.0)]
        )
        assert len(as_block.core.index) == 3  # cpu{dc,host} is one series however spelled
        # reopened, the store knows each series by its key: the next block adds none
        await as_block.close()
        as_block = stores[1] = MetricsStore(
            tmp_path / "block.duckdb", MetricsSettings(), KEEP_ALL_S
        )
        await as_block.open()
        later = SampleBlock.of_samples(
            series("cpu", 2, T0 + 500, {"dc": "x", "host": "a"}), T0, aggregate_id="api"
        )
        assert await as_block.store_sequenced([(3, later)])
        assert len(as_block.core.index) == 3
        assert await as_block.stored_samples() == 10
    finally:
        for store in stores:
            await store.close()


async def test_a_block_naming_a_series_with_bad_labels_stores_nothing(store: MetricsStore) -> None:
    good = SampleBlock.of_samples(series("cpu", 2, T0, {"host": "a"}), T0, aggregate_id="api")
    names, labels = ["cpu", "cpu"], ['{"host":"b"}', '{"host":"line\\nbreak"}']
    bad = SampleBlock.of_columns(
        names,
        labels,
        np.array([series_key(n, lj) for n, lj in zip(names, labels, strict=True)]),
        np.array([0, 1]),
        np.array([T0 * 1000, T0 * 1000], dtype=np.int64),
        np.array([1.0, 2.0]),
        aggregate_id="api",
        received_at=T0,
    )
    with pytest.raises(UndecodableEvent):
        await store.store_sequenced([(1, good), (2, bad)])
    assert await store.stored_samples() == 0
    assert await store.last_seq() == 0
    assert await store.store_sequenced([(1, good)]) is True
    assert await store.stored_samples() == 2


async def test_partly_redelivered_batches_store_only_what_is_new(store: MetricsStore) -> None:
    first = batch(series("cpu", 2, 1_000.0, {"host": "a"}))
    second = batch(series("cpu", 3, 2_000.0, {"host": "a"}))
    assert await store.store_sequenced([(1, first)]) is True
    assert await store.store_sequenced([(1, first), (2, second)]) is True
    assert await store.stored_samples() == 5
    assert await store.last_seq() == 2
    assert await store.store_sequenced([(1, first), (2, second)]) is False
    assert await store.stored_samples() == 5


async def test_a_reopened_store_resumes_at_its_checkpoint_with_its_series(tmp_path: Path) -> None:
    path = tmp_path / "metrics.duckdb"
    first = MetricsStore(path, MetricsSettings(), KEEP_ALL_S)
    await first.open()
    await first.store(4, [batch(series("cpu", 10, T0, {"host": "a"}))])
    await first.close()

    again = MetricsStore(path, MetricsSettings(), KEEP_ALL_S)
    await again.open()
    try:
        assert await again.position() == (10, 4)
        assert await again.store(4, [batch(series("cpu", 10, T0, {"host": "a"}))]) is False
        await again.store(5, [batch(series("cpu", 10, T0 + 10, {"host": "a"}))])
        assert len(again.core.index) == 1  # the same series, not a second one
        assert len((await again.query(QuerySamples(name="cpu", limit=100))).rows) == 20
    finally:
        await again.close()


async def test_compaction_sorts_finished_blocks_and_keeps_every_sample(
    store: MetricsStore,
) -> None:
    # two series interleaved over three hours, ten seconds apart
    for n in range(3):
        samples = [
            *series("cpu", 360, H0 + n * HOUR, {"host": "a"}, every_s=10),
            *series("cpu", 360, H0 + n * HOUR, {"host": "b"}, every_s=10),
        ]
        await store.store(n + 1, [batch(samples)])
    before = await everything(store)
    # the third hour ended, but less than the grace period ago: it stays hot
    moved = await store.compact(H0 + 3 * HOUR + 60)
    assert moved == 2 * 2 * 360
    tables = store.core.tables()
    assert sorted(tables.raw) == [int(H0 * 1000), int((H0 + HOUR) * 1000)]
    assert tables.hot == {int((H0 + 2 * HOUR) * 1000)}
    assert await everything(store) == before
    assert await store.stored_samples() == 3 * 2 * 360

    cursor = store.core.reader()
    try:
        rows = cursor.execute(f"SELECT series_id, dt FROM raw_{int(H0 * 1000)}").fetchall()
    finally:
        cursor.close()
    # sorted by series, then time: each timestamp stored as its step from the one before
    assert [i for i, _ in rows] == sorted(i for i, _ in rows)
    assert {dt for _, dt in rows} == {0, 10_000}
    assert await store.compact(H0 + 3 * HOUR + 60) == 0


async def test_late_samples_of_a_compacted_block_are_merged_into_it(store: MetricsStore) -> None:
    await store.store(1, [batch(series("cpu", 100, H0, {"host": "a"}, every_s=10))])
    await store.compact(H0 + 2 * HOUR)
    late = [Sample(name="cpu", value=-1.0, timestamp=H0 + 5, labels={"host": "a"})]
    await store.store(2, [batch(late)])
    assert await store.compact(H0 + 2 * HOUR) == 1
    rows = (await store.query(QuerySamples(name="cpu", end=H0 + 20, limit=10))).rows
    assert [(ts, value) for _, _, ts, value in rows] == [
        (H0, 0.0),
        (H0 + 5, -1.0),
        (H0 + 10, 1.0),
        (H0 + 20, 2.0),
    ]
    count = await store.aggregate("cpu", {}, H0, H0 + HOUR - 1, HOUR, "count", now_s=H0)
    assert count == [{"labels": {}, "points": [[H0, 101.0]]}]


async def test_retention_drops_whole_blocks_past_it_and_keeps_the_count(tmp_path: Path) -> None:
    store = MetricsStore(tmp_path / "metrics.duckdb", MetricsSettings(), 2 * HOUR)
    await store.open()
    try:
        await store.store(1, [batch(series("cpu", 4 * 360, H0, {}, every_s=10))])
        await store.compact(H0 + 5 * HOUR)
        # two hours kept at H0 + 4.5 h: the first two blocks are wholly older, the third
        # (H0 + 2 h .. 3 h) holds samples from 2.5 h ago and stays whole
        deleted = await store.apply_retention(H0 + 4.5 * HOUR)
        assert deleted == 2 * 360
        assert await store.stored_samples() == 2 * 360
        rows = (await store.query(QuerySamples(name="cpu", limit=10_000))).rows
        assert rows[0][2] == H0 + 2 * HOUR
        assert await store.apply_retention(H0 + 4.5 * HOUR) == 0
    finally:
        await store.close()


async def test_retention_deletes_samples_stamped_too_far_in_the_future(store: MetricsStore) -> None:
    await store.store(1, [batch(series("cpu", 100, T0, {}, every_s=60))])
    deleted = await store.apply_retention(T0 + 30 * 60 - 300)  # MAX_FUTURE_S is 300
    assert deleted == 100 - 31
    rows = (await store.query(QuerySamples(name="cpu", limit=1000))).rows
    assert rows[-1][2] == T0 + 30 * 60
    assert await store.stored_samples() == 31


async def test_finer_rollups_replace_raw_blocks_leaving_retention_then_go_too(
    tmp_path: Path,
) -> None:
    tuning = MetricsSettings(retention_1m_s=2 * 86_400)
    store = MetricsStore(tmp_path / "metrics.duckdb", tuning, 2 * HOUR)
    await store.open()
    try:
        await store.store(1, [batch(series("cpu", 60, H0, {}, every_s=60))])
        await store.compact(H0 + 2 * HOUR)
        tables = store.core.tables()
        assert tables.rollups["1h"] and not tables.rollups["1m"] and not tables.rollups["5m"]
        from_raw = await store.aggregate("cpu", {}, H0, H0 + HOUR, 60, "max", now_s=H0)

        assert await store.apply_retention(H0 + 3 * HOUR) == 60
        tables = store.core.tables()
        assert not tables.raw
        assert tables.rollups["1m"] and tables.rollups["5m"]
        assert await store.query(QuerySamples(name="cpu")) == SampleWindow([], False)
        from_rollup = await store.aggregate(
            "cpu", {}, H0, H0 + HOUR, 60, "max", now_s=H0 + 3 * HOUR
        )
        assert from_rollup == from_raw
        assert len(from_rollup[0]["points"]) == 60

        await store.apply_retention(H0 + 4 * 86_400)
        tables = store.core.tables()
        assert not tables.rollups["1m"]
        assert tables.rollups["5m"] and tables.rollups["1h"]
        five = await store.aggregate("cpu", {}, H0, H0 + HOUR, 300, "sum", now_s=H0 + 4 * 86_400)
        assert five[0]["points"][0] == [H0, float(sum(range(5)))]
    finally:
        await store.close()


async def test_the_file_reuses_the_space_of_dropped_blocks(tmp_path: Path) -> None:
    """Days of hourly blocks passing through a store that keeps one day of everything:
    the file grows to the size of a day's data and then stays there."""
    path = tmp_path / "metrics.duckdb"
    day = 86_400
    tuning = MetricsSettings(retention_1m_s=day, retention_5m_s=day, retention_1h_s=day)
    store = MetricsStore(path, tuning, day)
    await store.open()
    sizes = []
    try:
        for hour in range(24 * 4):
            start = H0 + hour * HOUR
            samples = [
                Sample(
                    name="load",
                    value=float((hour * 360 + n) % 977) / 7,
                    timestamp=start + (n % 360) * 10,
                    labels={"host": f"h{n // 360}"},
                )
                for n in range(360 * 20)
            ]
            await store.store(hour + 1, [batch(samples)])
            now = start + HOUR + 700
            await store.compact(now)
            await store.apply_retention(now)
            if hour % 24 == 23:
                sizes.append(path.stat().st_size)
    finally:
        await store.close()
    assert sizes[-1] <= sizes[1] * 1.2, sizes


async def test_the_store_file_uses_its_memory_and_thread_settings(tmp_path: Path) -> None:
    tuning = MetricsSettings(memory_limit="64MB", threads=1)
    store = MetricsStore(tmp_path / "metrics.duckdb", tuning, KEEP_ALL_S)
    await store.open()
    try:
        cursor = store.core.reader()
        try:
            limit, threads = cursor.execute(
                "SELECT current_setting('memory_limit'), current_setting('threads')"
            ).fetchone() or (None, None)
        finally:
            cursor.close()
        assert threads == 1
        assert str(limit).startswith("61") or str(limit).startswith("64"), limit
    finally:
        await store.close()
    duckdb.connect(str(tmp_path / "metrics.duckdb")).close()  # closed: the lock is free


async def test_reads_run_beside_writes_compaction_and_retention(store: MetricsStore) -> None:
    """Tables come and go under the readers: every read still answers whole blocks."""
    hours = 12

    written = asyncio.Event()
    read_since_write = asyncio.Event()

    async def write() -> None:
        for hour in range(hours):
            start = H0 + hour * HOUR
            samples = [s for n in range(20) for s in series("cpu", 360, start, {"h": str(n)}, 10)]
            read_since_write.clear()
            await store.store(hour + 1, [batch(samples)])
            await store.compact(start + 0.5 * HOUR)
            await store.apply_retention(start + HOUR)
            if hour % 3 == 0:  # some writes wait for a read, so reads see several states
                await asyncio.wait_for(read_since_write.wait(), 30)
        written.set()

    async def read() -> list[int]:
        counts = []
        while not written.is_set():
            rows = (await store.query(QuerySamples(name="cpu", limit=100_000))).rows
            counts.append(len(rows))
            await store.aggregate("cpu", {}, H0, H0 + hours * HOUR, 300, "p90", now_s=H0)
            read_since_write.set()
        return counts

    _, counts = await asyncio.gather(write(), read())
    assert all(count % 7200 == 0 for count in counts), counts  # whole batches only
    assert len(set(counts)) > 1  # the reads did overlap the writes
    everything = await store.query(QuerySamples(name="cpu", limit=100_000))
    assert len(everything.rows) == hours * 7200


async def test_a_file_keeps_the_block_size_it_was_made_with(tmp_path: Path) -> None:
    path = tmp_path / "metrics.duckdb"
    made = MetricsStore(path, MetricsSettings(block_s=7200), KEEP_ALL_S)
    await made.open()
    await made.store(1, [batch(series("cpu", 720, H0 - HOUR, {}, every_s=10))])
    await made.close()

    reopened = MetricsStore(path, MetricsSettings(block_s=3600), KEEP_ALL_S)
    await reopened.open()
    try:
        assert reopened.core.block_ms == 7_200_000
        rows = (await reopened.query(QuerySamples(name="cpu", limit=1000))).rows
        assert len(rows) == 720
    finally:
        await reopened.close()
