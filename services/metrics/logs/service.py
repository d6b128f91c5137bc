"""The log store's part of the metrics service: its database, consumer, queries,
retention pass and rebuild."""

from __future__ import annotations

import asyncio
import logging
import time

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from services.metrics.logs.consumer import LOGS_CONSUMER, log_storer
from services.metrics.logs.queries import LogQueries
from services.metrics.logs.store import LogStore
from services.metrics.logs.tables import SERVICE
from shared.bus import EventBus, log_session
from shared.commands import LOG_HISTOGRAM, SEARCH_LOGS
from shared.db import create_engine
from shared.events import LogsIngested
from shared.runtime import ServiceRuntime
from shared.settings import Settings
from shared.streams import LOGS

log = logging.getLogger(__name__)

REPLAY_FETCH = 16
REBUILD_FLUSH_LINES = 50_000


class LogStoreSettings(BaseSettings):
    """Settings only the log store reads (VIGIL_LOGS_*; retention itself is shared: the
    gateway refuses lines older than it)."""

    model_config = SettingsConfigDict(env_prefix="VIGIL_LOGS_", extra="ignore")

    retention_interval_s: float = Field(
        default=600.0, gt=0, description="How often lines past their retention are deleted"
    )


def open_log_store(settings: Settings) -> LogStore:
    """On the metrics service's SQL database: ``<data dir>/metrics.db`` by default, or the
    shared PostgreSQL database of DATABASE_URL (tables prefixed ``metrics_``)."""
    return LogStore(create_engine(settings.database_url_for(SERVICE)), settings)


def add_log_store(
    runtime: ServiceRuntime, settings: Settings, tuning: LogStoreSettings | None = None
) -> LogStore:
    tuning = tuning if tuning is not None else LogStoreSettings()
    store = open_log_store(settings)
    runtime.on_start(store.open)
    runtime.watch_database(store.engine)
    runtime.consume_batches(LOGS_CONSUMER, log_storer(store), store.last_seq)
    queries = LogQueries(store)
    runtime.respond(SEARCH_LOGS, queries.search)
    runtime.respond(LOG_HISTOGRAM, queries.histogram)

    async def retention() -> None:
        while True:
            try:
                deleted = await store.apply_retention(time.time())
                if deleted:
                    log.info("deleted log lines past retention", extra={"deleted": deleted})
            except Exception:
                log.exception("log retention pass failed")
            await asyncio.sleep(tuning.retention_interval_s)

    runtime.background(retention)
    runtime.on_stop(store.close)
    return store


async def rebuild_logs(settings: Settings) -> None:
    """Store what the LOGS window holds and the store lacks (a lost or new database gets
    the whole window; an intact one skips what it has by its checkpoint). Run it with the
    service stopped; each transaction moves the checkpoint, so it can be run again."""
    store = open_log_store(settings)
    await store.open()
    try:
        async with log_session(settings, f"{SERVICE}-logs-rebuild") as bus:
            await replay_logs(bus, store)
    finally:
        await store.close()


async def replay_logs(bus: EventBus, store: LogStore) -> int:
    """Replay LOGS into ``store``; returns the last sequence replayed."""
    pending: list[tuple[int, LogsIngested]] = []
    lines = 0
    last_seq = 0
    replay = bus.replay(LOGS.name, LOGS_CONSUMER.filter_subject, batch=REPLAY_FETCH)
    async for recorded in replay:
        last_seq = recorded.seq
        if isinstance(recorded.event, LogsIngested):
            pending.append((recorded.seq, recorded.event))
            lines += len(recorded.event.entries)
        if lines >= REBUILD_FLUSH_LINES:
            await store.store_sequenced(pending)
            pending, lines = [], 0
    if pending:
        await store.store_sequenced(pending)
    log.info("rebuilt the log store", extra={"last_seq": last_seq})
    return last_seq
