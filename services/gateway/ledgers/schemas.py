"""Views of the notification and dead-letter ledgers."""

from __future__ import annotations

from typing import Literal

from services.gateway.common.schemas import Public, UtcDateTime


class NotificationPublic(Public):
    id: str
    event_id: str
    event_type: str
    channel: str
    status: Literal["delivered", "failed"]
    attempts: int
    status_code: int | None
    latency_ms: float | None
    error: str
    permanent: bool
    time: UtcDateTime
    seq: int


class DeadLetterPublic(Public):
    id: str
    consumer: str
    stream: str
    stream_seq: int
    subject: str
    deliveries: int
    error: str
    payload: str
    time: UtcDateTime
    seq: int
