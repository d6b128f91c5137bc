"""Wiring of the metrics service: the store consumer, the queries, compaction, retention
and rebuild; and the log store (services/metrics/logs)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from services.metrics.api import MetricsQueries
from services.metrics.handlers import STORE_CONSUMER, sample_storer
from services.metrics.logs.service import add_log_store, rebuild_logs
from services.metrics.probe import MetricsStoreProbe
from services.metrics.query_api import prom_queries
from services.metrics.remote.forward import forward_samples
from services.metrics.settings import MetricsSettings
from services.metrics.slo.wiring import add_slos
from services.metrics.store import FILE_NAME, SERVICE, MetricsStore
from shared.bus import EventBus, log_session
from shared.commands import QUERY_METRICS_STATS, QUERY_SAMPLES
from shared.config import VigilConfig, load_config
from shared.events import SampleBatch, SampleBlock, SamplesIngested
from shared.runtime import ServiceRuntime
from shared.settings import Settings
from shared.streams import METRICS

log = logging.getLogger(__name__)

REBUILD_FLUSH_SAMPLES = 50_000  # samples per transaction while replaying
REPLAY_FETCH = 32  # messages per fetch: a batch may hold 10,000 samples


def open_store(settings: Settings, tuning: MetricsSettings) -> MetricsStore:
    """The store's file is ``<data_dir>/metrics.duckdb``, whatever DATABASE_URL says."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    return MetricsStore(settings.data_dir / FILE_NAME, tuning, settings.metrics_retention_s)


def build(
    settings: Settings,
    config: VigilConfig | None = None,
    metrics_settings: MetricsSettings | None = None,
) -> ServiceRuntime:
    """The metrics service. Of the YAML config it reads the SLOs and the maintenance
    windows they may leave out."""
    tuning = metrics_settings if metrics_settings is not None else MetricsSettings()
    runtime = ServiceRuntime(SERVICE, settings)
    store = open_store(settings, tuning)
    runtime.on_start(store.open)
    probe = MetricsStoreProbe(store)

    async def watch_store() -> None:
        await probe.watch(settings.heartbeat_interval_s)

    runtime.background(watch_store)
    runtime.report_status(probe.report)
    runtime.consume_batches(STORE_CONSUMER, sample_storer(store), store.last_seq)
    queries = MetricsQueries(store, lambda: runtime.bus)
    runtime.respond(QUERY_SAMPLES, queries.samples)
    runtime.respond(QUERY_METRICS_STATS, queries.stats)
    promql = prom_queries(store, settings)  # PromQL, series, labels, chart aggregates
    for subject, handler in promql.handlers():
        runtime.respond(subject, handler)
    runtime.on_stop(promql.close)
    forward_samples(runtime, settings)  # to a remote-write store, when one is configured
    add_log_store(runtime, settings)  # log lines, on the service's SQL database
    add_slos(runtime, store, config if config is not None else load_config(settings.config))

    async def compaction() -> None:
        await every(tuning.compaction_interval_s, "compaction", lambda: compact(store))

    async def retention() -> None:
        await every(tuning.retention_interval_s, "retention", lambda: apply_retention(store))

    runtime.background(compaction)
    runtime.background(retention)
    runtime.on_stop(store.close)
    return runtime


async def compact(store: MetricsStore, clock: Callable[[], float] = time.time) -> int:
    """Compact the blocks that are done; returns how many samples moved."""
    moved = await store.compact(clock())
    if moved:
        log.info("compacted samples", extra={"samples": moved})
    return moved


async def apply_retention(store: MetricsStore, clock: Callable[[], float] = time.time) -> int:
    """Drop what is past retention (whole blocks and rollup partitions); returns how many
    samples went."""
    deleted = await store.apply_retention(clock())
    if deleted:
        log.info("deleted samples past retention", extra={"deleted": deleted})
    return deleted


async def every(interval_s: float, what: str, task: Callable[[], Awaitable[int]]) -> None:
    """Run ``task`` now and every interval; a failed pass is logged and tried again."""
    while True:
        try:
            await task()
        except Exception:
            log.exception(f"{what} pass failed", extra={"service": SERVICE})
        await asyncio.sleep(interval_s)


async def rebuild(settings: Settings, metrics_settings: MetricsSettings | None = None) -> None:
    """Recreate the store's un-compacted samples from METRICS; the checkpoint ends at the
    replayed end.

    METRICS keeps a bounded window, so the compacted blocks and the rollups are kept: a
    replayed sample is skipped when its block was compacted after its batch was stored.
    Without a store file at all, whatever the stream still holds is stored again. Run it
    with the service stopped; batches are grouped into large transactions, each advancing
    the checkpoint, so an interrupted rebuild can simply be run again. The log store is
    then replayed from LOGS the same way (``rebuild_logs``).
    """
    tuning = metrics_settings if metrics_settings is not None else MetricsSettings()
    store = open_store(settings, tuning)
    await store.open()
    try:
        async with log_session(settings, f"{SERVICE}-rebuild") as bus:
            await _replay_into(bus, store)
    finally:
        await store.close()
    await rebuild_logs(settings)


async def _replay_into(bus: EventBus, store: MetricsStore) -> None:
    stream_end = int((await bus.js.stream_info(METRICS.name)).state.last_seq)
    await store.reset_for_replay()
    pending: list[tuple[int, SampleBatch]] = []
    pending_samples = 0
    last_seq = 0
    replay = bus.replay(METRICS.name, STORE_CONSUMER.filter_subject, batch=REPLAY_FETCH)
    async for recorded in replay:
        last_seq = recorded.seq
        if isinstance(recorded.event, SamplesIngested | SampleBlock):
            pending.append((recorded.seq, recorded.event))
            pending_samples += recorded.event.count
        if pending_samples >= REBUILD_FLUSH_SAMPLES:
            await store.store_sequenced(pending)
            pending, pending_samples = [], 0
    if pending:
        await store.store_sequenced(pending)
    if last_seq < stream_end:
        # the checkpoint is where the replay stopped: the service resumes from there
        raise RuntimeError(
            f"the replay of {METRICS.name} stopped at sequence {last_seq} of {stream_end}: "
            "run the rebuild again, or start the service, which stores the rest"
        )
    await compact(store)
    await apply_retention(store)
    log.info(
        "rebuilt metrics store",
        extra={"last_seq": last_seq, "stored_samples": await store.stored_samples()},
    )
