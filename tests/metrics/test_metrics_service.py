"""The metrics service against a real nats-server: consume, query, stats, rebuild."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from services.metrics.api import MetricsQueries
from services.metrics.app import apply_retention, build, compact, open_store, rebuild
from services.metrics.settings import MetricsSettings
from shared import subjects
from shared.bus import EventBus
from shared.commands import QUERY_METRICS_STATS, QUERY_SAMPLES, QuerySamples
from shared.errors import InvalidInput
from shared.events import Sample
from shared.natsserver import EmbeddedNats
from shared.settings import Settings
from tests.conftest import RuntimeFactory
from tests.metrics.conftest import batch, series
from tests.waiting import eventually

T0 = 1_700_000_000.0
H0 = 1_699_999_200.0  # a whole hour
KEEP_ALL = MetricsSettings(retention_interval_s=3600)


@pytest.fixture
def service_settings(nats_server: EmbeddedNats, tmp_path: Path) -> Settings:
    return Settings(
        nats_url=nats_server.url,
        data_dir=tmp_path / "data",
        heartbeat_interval_s=0.2,
        metrics_retention_s=1e12,  # retention never deletes what these tests write at T0
    )


async def stats(bus: EventBus) -> dict[str, Any]:
    result: dict[str, Any] = await bus.request(QUERY_METRICS_STATS, {})
    return result


async def stored_rows(settings: Settings) -> list[tuple[str, str, float, float]]:
    store = open_store(settings, KEEP_ALL)
    await store.open()
    try:
        return sorted((await store.query(QuerySamples(limit=100_000))).rows)
    finally:
        await store.close()


async def test_published_batches_are_stored_and_queryable(
    bus: EventBus, service_settings: Settings, start_service: RuntimeFactory
) -> None:
    await start_service(build(service_settings, metrics_settings=KEEP_ALL))
    await bus.publish(subjects.samples("api"), batch(series("cpu", 1000, T0, {"host": "a"})))
    last = await bus.publish(
        subjects.samples("agent-b"), batch(series("cpu", 500, T0, {"host": "b"}), source="agent-b")
    )

    async def caught_up() -> bool:
        return (await stats(bus))["last_seq"] == last

    await eventually(caught_up, what="metrics-store to reach the stream end")
    assert await stats(bus) == {
        "stored_samples": 1500,
        "last_seq": last,
        "stream_last_seq": last,
        "backlog": 0,
    }
    reply = await bus.request(
        QUERY_SAMPLES, {"name": "cpu", "labels": {"host": "b"}, "start": T0 + 10, "limit": 3}
    )
    assert reply["truncated"] is True
    assert reply["samples"] == [
        {"name": "cpu", "value": float(n), "timestamp": T0 + n, "labels": {"host": "b"}}
        for n in (497, 498, 499)
    ]


async def test_bad_query_is_rejected_naming_the_field(
    bus: EventBus, service_settings: Settings, start_service: RuntimeFactory
) -> None:
    await start_service(build(service_settings, metrics_settings=KEEP_ALL))
    with pytest.raises(InvalidInput) as error:
        await bus.request(QUERY_SAMPLES, {"name": "cpu", "limit": 0})
    assert error.value.field == "limit"


async def test_stats_show_the_backlog_of_unstored_batches(
    bus: EventBus, service_settings: Settings
) -> None:
    store = open_store(service_settings, KEEP_ALL)
    await store.open()
    try:
        for n in range(3):
            await bus.publish(subjects.samples("api"), batch(series("cpu", 2, T0 + n * 10, {})))
        queries = MetricsQueries(store, lambda: bus)
        assert await queries.stats({}) == {
            "stored_samples": 0,
            "last_seq": 0,
            "stream_last_seq": 3,
            "backlog": 3,
        }
    finally:
        await store.close()


async def test_rebuild_gives_the_same_rows_as_the_live_store(
    bus: EventBus, service_settings: Settings, start_service: RuntimeFactory
) -> None:
    runtime = await start_service(build(service_settings, metrics_settings=KEEP_ALL))
    last = 0
    for n in range(5):
        samples = [
            *series("cpu", 300, T0 + n * 1000, {"host": f"h{n}"}),
            Sample(name="load", value=n, labels={"host": f"h{n}"}),  # stamped on receipt
        ]
        last = await bus.publish(
            subjects.samples("api"), batch(samples, received_at=T0 + 50_000 + n)
        )

    async def caught_up() -> bool:
        return (await stats(bus))["last_seq"] == last

    await eventually(caught_up, what="metrics-store to reach the stream end")
    live = await stored_rows(service_settings)
    await runtime.stop()
    # closed cleanly: everything checkpointed into the file, no write-ahead log left
    assert (service_settings.data_dir / "metrics.duckdb").exists()
    assert not (service_settings.data_dir / "metrics.duckdb.wal").exists()

    await rebuild(service_settings, KEEP_ALL)

    assert await stored_rows(service_settings) == live
    assert len(live) == 5 * 301
    store = open_store(service_settings, KEEP_ALL)
    await store.open()
    try:
        assert await store.last_seq() == last
        assert await store.stored_samples() == len(live)
    finally:
        await store.close()


async def test_rebuild_keeps_compacted_blocks_and_replays_what_is_not(
    bus: EventBus, service_settings: Settings
) -> None:
    """The stream keeps a window only: what was compacted stays as it is, the rest
    comes back from the stream, and nothing is stored twice."""
    store = open_store(service_settings, KEEP_ALL)
    await store.open()
    old = batch(series("cpu", 360, H0, {"host": "old"}, every_s=10))
    late = batch([Sample(name="cpu", value=-1.0, timestamp=H0 + 5, labels={"host": "old"})])
    recent = batch(series("cpu", 360, H0 + 5 * 3600, {"host": "new"}, every_s=10))
    try:
        seqs = []
        for event in (old, late, recent):
            seqs.append(await bus.publish(subjects.samples("api"), event))
        await store.store(seqs[0], [old])
        await compact(store, clock=lambda: H0 + 2 * 3600)  # only the first hour is done
        await store.store(seqs[1], [late])  # a late sample, not compacted yet
        await store.store(seqs[2], [recent])
        live = sorted((await store.query(QuerySamples(limit=100_000))).rows)
    finally:
        await store.close()

    await rebuild(service_settings, MetricsSettings(compaction_grace_s=1e11))

    assert await stored_rows(service_settings) == live
    assert len(live) == 721
    store = open_store(service_settings, KEEP_ALL)
    await store.open()
    try:
        assert await store.position() == (721, seqs[2])
    finally:
        await store.close()


async def test_retention_pass_drops_blocks_older_than_the_setting(
    service_settings: Settings,
) -> None:
    settings = service_settings.model_copy(update={"metrics_retention_s": 3600.0})
    store = open_store(settings, KEEP_ALL)
    await store.open()
    try:
        await store.store(1, [batch(series("cpu", 10, H0, {}, every_s=720))])
        deleted = await apply_retention(store, clock=lambda: H0 + 7200 + 4.5)
        assert deleted == 5
        assert await store.stored_samples() == 5
    finally:
        await store.close()


async def test_heartbeats_say_whether_the_store_answers(
    service_settings: Settings, start_service: RuntimeFactory
) -> None:
    runtime = await start_service(build(service_settings, metrics_settings=KEEP_ALL))

    def database() -> Any:
        return runtime.status().get("database", {}).get("ok")

    await eventually(database, what="a database report in the heartbeat")
    assert runtime.status()["database"]["detail"].startswith("answered in")


async def test_the_service_compacts_finished_blocks_on_its_own(
    bus: EventBus, service_settings: Settings, start_service: RuntimeFactory
) -> None:
    tuning = MetricsSettings(compaction_interval_s=0.1)
    runtime = await start_service(build(service_settings, metrics_settings=tuning))
    await bus.publish(
        subjects.samples("api"), batch(series("cpu", 720, H0, {"host": "a"}, every_s=10))
    )

    def compacted() -> Any:
        store = runtime.status().get("metrics_store", {})
        return store.get("compacted_blocks") == 2 and store.get("hot_blocks") == 0

    await eventually(compacted, what="both hours compacted")
    assert runtime.status()["metrics_store"]["series"] == 1
    assert (await stats(bus))["stored_samples"] == 720
