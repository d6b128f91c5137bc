"""The metrics service against a real nats-server: consume, query, stats, rebuild."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from services.metrics.api import MetricsQueries
from services.metrics.app import apply_retention, build, rebuild
from services.metrics.projections import SampleStore, samples_table
from services.metrics.settings import MetricsSettings
from shared import subjects
from shared.bus import EventBus
from shared.commands import QUERY_METRICS_STATS, QUERY_SAMPLES
from shared.db import create_engine
from shared.errors import InvalidInput
from shared.events import Sample
from shared.natsserver import EmbeddedNats
from shared.settings import Settings
from tests.conftest import RuntimeFactory
from tests.metrics.conftest import batch, series
from tests.waiting import eventually

T0 = 1_700_000_000.0
KEEP_ALL = MetricsSettings(retention_interval_s=3600)


@pytest.fixture
def service_settings(nats_server: EmbeddedNats, tmp_path: Path, database_url: str) -> Settings:
    return Settings(
        nats_url=nats_server.url,
        data_dir=tmp_path / "data",
        database_url=database_url,
        heartbeat_interval_s=0.2,
        metrics_retention_s=1e12,  # retention never deletes what these tests write at T0
    )


async def stats(bus: EventBus) -> dict[str, Any]:
    result: dict[str, Any] = await bus.request(QUERY_METRICS_STATS, {})
    return result


async def stored_rows(settings: Settings) -> list[tuple[str, str, float, float]]:
    engine = create_engine(settings.database_url_for("metrics"))
    try:
        async with engine.connect() as conn:
            result = await conn.execute(
                select(
                    samples_table.c.name,
                    samples_table.c.labels,
                    samples_table.c.ts,
                    samples_table.c.value,
                ).order_by(samples_table.c.id)
            )
            return [(r[0], r[1], r[2], r[3]) for r in result]
    finally:
        await engine.dispose()


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
    store = SampleStore(create_engine(service_settings.database_url_for("metrics")))
    await store.create_all()
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
        await store.dispose()


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

    await rebuild(service_settings, KEEP_ALL)

    assert await stored_rows(service_settings) == live
    assert len(live) == 5 * 301
    store = SampleStore(create_engine(service_settings.database_url_for("metrics")))
    try:
        assert await store.last_seq() == last
        assert await store.stored_samples() == len(live)
    finally:
        await store.dispose()


async def test_retention_pass_removes_samples_older_than_the_setting(
    service_settings: Settings,
) -> None:
    store = SampleStore(create_engine(service_settings.database_url_for("metrics")))
    await store.create_all()
    try:
        await store.store(1, [batch(series("cpu", 10, T0, {}))])
        deleted = await apply_retention(store, 3600, KEEP_ALL, clock=lambda: T0 + 3600 + 4.5)
        assert deleted == 5
        assert await store.stored_samples() == 5
    finally:
        await store.dispose()
