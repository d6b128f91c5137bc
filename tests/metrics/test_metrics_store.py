"""The samples read model on SQLite and PostgreSQL: exactly-once writes, queries, retention."""

from __future__ import annotations

from collections.abc import AsyncIterator

import orjson
import pytest

from services.metrics.domain import SampleWindow
from services.metrics.projections import SampleStore
from shared.commands import QuerySamples
from shared.db import create_engine
from shared.events import Sample
from tests.metrics.conftest import batch, series

T0 = 1_700_000_000.0


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[SampleStore]:
    sample_store = SampleStore(create_engine(database_url))
    await sample_store.create_all()
    yield sample_store
    await sample_store.dispose()


async def test_a_batch_is_stored_once_even_when_redelivered(store: SampleStore) -> None:
    cpu = batch(series("cpu", 3, T0, {"host": "a"}))
    assert await store.store(1, [cpu]) is True
    assert await store.store(1, [cpu]) is False
    assert await store.stored_samples() == 3
    assert await store.last_seq() == 1
    window = await store.query(QuerySamples(name="cpu"))
    assert [s[3] for s in window.rows] == [0.0, 1.0, 2.0]


async def test_query_filters_by_name_labels_and_inclusive_time_range(store: SampleStore) -> None:
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

    everything = await store.query(QuerySamples(start=T0 + 9, end=T0 + 9))
    assert sorted(row[0] for row in everything.rows) == ["cpu", "cpu", "mem"]


async def test_limit_keeps_the_newest_samples_newest_last(store: SampleStore) -> None:
    await store.store(1, [batch(series("cpu", 10, T0, {"host": "a"}))])
    window = await store.query(QuerySamples(name="cpu", limit=3))
    assert [row[3] for row in window.rows] == [7.0, 8.0, 9.0]
    assert window.truncated is True
    exact = await store.query(QuerySamples(name="cpu", limit=10))
    assert exact.truncated is False
    assert len(exact.rows) == 10


async def test_awkward_label_values_round_trip(store: SampleStore) -> None:
    labels = {"path": 'C:\\tmp\\"quoted"', "note": "it's {ü} 東京 🙂", "empty": "", "u": "ß"}
    await store.store(
        1, [batch([Sample(name="odd", value=-1.25e-300, timestamp=T0, labels=labels)])]
    )
    window = await store.query(QuerySamples(name="odd", labels={"path": labels["path"], "u": "ß"}))
    assert len(window.rows) == 1
    name, text, ts, value = window.rows[0]
    assert (name, ts, value) == ("odd", T0, -1.25e-300)
    assert orjson.loads(text) == labels


async def test_retention_deletes_old_samples_and_keeps_the_count_right(
    store: SampleStore,
) -> None:
    await store.store(1, [batch(series("cpu", 100, T0, {"host": "a"}))])
    deleted = await store.delete_outside(T0 + 30, T0 + 1000, chunk=7)
    assert deleted == 30
    assert await store.stored_samples() == 70
    window = await store.query(QuerySamples(name="cpu", limit=1000))
    assert window.rows[0][2] == T0 + 30
    assert await store.delete_outside(T0 + 30, T0 + 1000, chunk=7) == 0


async def test_retention_deletes_samples_stamped_beyond_the_newest_allowed_too(
    store: SampleStore,
) -> None:
    await store.store(1, [batch(series("cpu", 100, T0, {"host": "a"}))])
    deleted = await store.delete_outside(T0 + 10, T0 + 89, chunk=7)
    assert deleted == 10 + 10
    window = await store.query(QuerySamples(name="cpu", limit=1000))
    assert [row[2] for row in window.rows] == [T0 + n for n in range(10, 90)]
    assert await store.stored_samples() == 80


async def test_several_batches_in_one_transaction_advance_the_checkpoint_once(
    store: SampleStore,
) -> None:
    first = batch(series("cpu", 2, T0, {}))
    second = batch(series("cpu", 3, T0 + 10, {}))
    assert await store.store(7, [first, second]) is True
    assert await store.last_seq() == 7
    assert await store.stored_samples() == 5
    assert await store.store(6, [first]) is False


async def test_partly_redelivered_batches_store_only_what_is_new(store: SampleStore) -> None:
    first = batch(series("cpu", 2, 1_000.0, {"host": "a"}))
    second = batch(series("cpu", 3, 2_000.0, {"host": "a"}))
    assert await store.store_sequenced([(1, first)]) is True
    # the same message again, now delivered together with the next one
    assert await store.store_sequenced([(1, first), (2, second)]) is True
    assert await store.stored_samples() == 5
    assert await store.last_seq() == 2
    assert await store.store_sequenced([(1, first), (2, second)]) is False
    assert await store.stored_samples() == 5
