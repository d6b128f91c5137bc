"""Wiring of the metrics service: the store consumer, the queries, retention, and rebuild."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from services.metrics.api import MetricsQueries
from services.metrics.domain import retention_window
from services.metrics.handlers import STORE_CONSUMER, sample_storer
from services.metrics.projections import SERVICE, SampleStore
from services.metrics.remote.forward import forward_samples
from services.metrics.settings import MetricsSettings
from shared.bus import EventBus, log_session
from shared.commands import QUERY_METRICS_STATS, QUERY_SAMPLES
from shared.config import VigilConfig
from shared.db import create_engine, release_free_space
from shared.events import SamplesIngested
from shared.runtime import ServiceRuntime
from shared.settings import Settings
from shared.streams import METRICS

log = logging.getLogger(__name__)

REBUILD_FLUSH_SAMPLES = 50_000  # samples per transaction while replaying


def build(
    settings: Settings,
    config: VigilConfig | None = None,
    metrics_settings: MetricsSettings | None = None,
) -> ServiceRuntime:
    """The metrics service. It reads no section of the YAML config, so ``config`` is not loaded."""
    tuning = metrics_settings if metrics_settings is not None else MetricsSettings()
    runtime = ServiceRuntime(SERVICE, settings)
    store = SampleStore(create_engine(settings.database_url_for(SERVICE)))
    runtime.on_start(store.create_all)
    runtime.watch_database(store.engine)
    runtime.consume_batches(STORE_CONSUMER, sample_storer(store), store.last_seq)
    queries = MetricsQueries(store, lambda: runtime.bus)
    runtime.respond(QUERY_SAMPLES, queries.samples)
    runtime.respond(QUERY_METRICS_STATS, queries.stats)
    forward_samples(runtime, settings)  # to a remote-write store, when one is configured

    async def retention() -> None:
        await enforce_retention(store, settings.metrics_retention_s, tuning)

    runtime.background(retention)
    runtime.on_stop(store.dispose)
    return runtime


async def apply_retention(
    store: SampleStore,
    retention_s: float,
    tuning: MetricsSettings,
    clock: Callable[[], float] = time.time,
) -> int:
    """Delete the samples past retention (``retention_window``), then give their space
    back to the file system; returns how many were deleted."""
    oldest, newest = retention_window(clock(), retention_s)
    deleted = await store.delete_outside(oldest, newest, tuning.retention_chunk)
    if deleted:
        pages = await release_free_space(store.engine)
        log.info(
            "deleted samples past retention",
            extra={"deleted": deleted, "oldest": oldest, "newest": newest, "pages_freed": pages},
        )
    return deleted


async def enforce_retention(
    store: SampleStore, retention_s: float, tuning: MetricsSettings
) -> None:
    """Delete old samples every interval; a failed pass is logged and tried again next time."""
    while True:
        try:
            await apply_retention(store, retention_s, tuning)
        except Exception:
            log.exception("retention pass failed", extra={"service": SERVICE})
        await asyncio.sleep(tuning.retention_interval_s)


async def rebuild(settings: Settings, metrics_settings: MetricsSettings | None = None) -> None:
    """Drop metrics_* tables and replay METRICS into them; the checkpoint ends at the replayed end.

    Run it with the service stopped. Batches are grouped into large transactions,
    each advancing the checkpoint to its last sequence, so an interrupted rebuild
    can simply be run again.
    """
    tuning = metrics_settings if metrics_settings is not None else MetricsSettings()
    store = SampleStore(create_engine(settings.database_url_for(SERVICE)))
    try:
        async with log_session(settings, f"{SERVICE}-rebuild") as bus:
            await _replay_into(bus, store, settings.metrics_retention_s, tuning)
    finally:
        await store.dispose()


async def _replay_into(
    bus: EventBus, store: SampleStore, retention_s: float, tuning: MetricsSettings
) -> None:
    await store.drop_all()
    await store.create_all()
    pending: list[SamplesIngested] = []
    pending_samples = 0
    last_seq = 0
    async for recorded in bus.replay(METRICS.name, STORE_CONSUMER.filter_subject):
        last_seq = recorded.seq
        if isinstance(recorded.event, SamplesIngested):
            pending.append(recorded.event)
            pending_samples += len(recorded.event.samples)
        if pending_samples >= REBUILD_FLUSH_SAMPLES:
            await store.store(last_seq, pending)
            pending, pending_samples = [], 0
    if last_seq and last_seq > await store.last_seq():
        await store.store(last_seq, pending)
    await apply_retention(store, retention_s, tuning)
    log.info(
        "rebuilt metrics read model",
        extra={"last_seq": last_seq, "stored_samples": await store.stored_samples()},
    )
