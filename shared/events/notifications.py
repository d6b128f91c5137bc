"""The delivery ledger's events: one outcome per (event, channel)."""

from __future__ import annotations

from shared.events.base import Event


class NotificationDelivered(Event):
    """aggregate_id is the delivery id: derived from (event id, channel)."""

    event_id: str
    event_type: str
    channel: str
    attempts: int
    status_code: int | None = None
    latency_ms: float


class NotificationFailed(Event):
    event_id: str
    event_type: str
    channel: str
    attempts: int
    error: str
    permanent: bool
