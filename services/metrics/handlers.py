"""The metrics-store consumer: every sample batch on METRICS into SQL, exactly once."""

from __future__ import annotations

import logging

from services.metrics.projections import STORE_PROJECTION, SampleStore
from shared import subjects
from shared.consumer import ConsumerSpec, Delivery, Handler
from shared.events import Event, SamplesIngested
from shared.streams import METRICS

log = logging.getLogger(__name__)

STORE_CONSUMER = ConsumerSpec(
    durable=STORE_PROJECTION,
    stream=METRICS,
    filter_subject=f"{subjects.SAMPLES}.>",
    ordered=True,
)


def sample_storer(store: SampleStore) -> Handler:
    async def store_samples(event: Event, delivery: Delivery) -> None:
        """Stores each sample of a batch; the checkpoint makes a redelivery a no-op."""
        if not isinstance(event, SamplesIngested):
            log.warning(
                "ignored non-sample event on METRICS",
                extra={"event_id": event.id, "type": event.type, "stream_seq": delivery.stream_seq},
            )
            return
        applied = await store.store(delivery.stream_seq, [event])
        log.debug(
            "stored samples" if applied else "skipped redelivered batch",
            extra={
                "event_id": event.id,
                "subject": delivery.subject,
                "stream_seq": delivery.stream_seq,
                "correlation_id": event.correlation_id,
                "samples": len(event.samples),
            },
        )

    return store_samples
