"""The logs-store consumer: every batch on LOGS into the log store, exactly once."""

from __future__ import annotations

import logging

from services.metrics.logs.store import STORE_PROJECTION, LogStore
from shared import subjects
from shared.consumer import BatchHandler, ConsumerSpec, Delivery
from shared.events import Event, LogsIngested
from shared.streams import LOGS

log = logging.getLogger(__name__)

# a batch may hold 10,000 lines and 5 MB: 16 of them bound one transaction
LOGS_CONSUMER = ConsumerSpec(
    durable=STORE_PROJECTION,
    stream=LOGS,
    filter_subject=f"{subjects.LOG_ENTRIES}.>",
    ordered=True,
    batch=16,
)


def log_storer(store: LogStore) -> BatchHandler:
    async def store_lines(items: list[tuple[Event, Delivery]]) -> None:
        """The lines of many batches in one transaction; the checkpoint makes a
        redelivery a no-op."""
        batches: list[tuple[int, LogsIngested]] = []
        for event, delivery in items:
            if isinstance(event, LogsIngested):
                batches.append((delivery.stream_seq, event))
            else:
                log.warning(
                    "ignored an event on LOGS that is not a log batch",
                    extra={"event_id": event.id, "type": event.type, "seq": delivery.stream_seq},
                )
        if not batches:
            return
        await store.store_sequenced(batches)

    return store_lines
