"""The metrics-store consumer: every sample batch on METRICS into the store, exactly once."""

from __future__ import annotations

import logging

from services.metrics.store import STORE_PROJECTION, MetricsStore
from shared import subjects
from shared.consumer import BatchHandler, ConsumerSpec, Delivery
from shared.events import Event, SampleBatch, SampleBlock, SamplesIngested
from shared.streams import METRICS

log = logging.getLogger(__name__)

STORE_CONSUMER = ConsumerSpec(
    durable=STORE_PROJECTION,
    stream=METRICS,
    filter_subject=f"{subjects.SAMPLES}.>",
    ordered=True,
    batch=64,
)


def sample_storer(store: MetricsStore) -> BatchHandler:
    async def store_samples(items: list[tuple[Event, Delivery]]) -> None:
        """Stores the samples of many batches in one transaction; the checkpoint makes a
        redelivery a no-op."""
        batches: list[tuple[int, SampleBatch]] = []
        for event, delivery in items:
            if isinstance(event, SamplesIngested | SampleBlock):
                batches.append((delivery.stream_seq, event))
            else:
                log.warning(
                    "ignored non-sample event on METRICS",
                    extra={
                        "event_id": event.id,
                        "type": event.type,
                        "stream_seq": delivery.stream_seq,
                    },
                )
        applied = await store.store_sequenced(batches)
        log.debug(
            "stored samples" if applied else "skipped redelivered batches",
            extra={
                "first_seq": items[0][1].stream_seq,
                "last_seq": items[-1][1].stream_seq,
                "messages": len(items),
            },
        )

    return store_samples
