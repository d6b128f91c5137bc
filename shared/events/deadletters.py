"""Messages a consumer gave up on, kept whole so they can be inspected and replayed."""

from __future__ import annotations

from shared.events.base import Event


class MessageDeadLettered(Event):
    """aggregate_id is the consumer name."""

    consumer: str
    stream: str
    stream_seq: int
    subject: str
    deliveries: int
    error: str
    payload: str
