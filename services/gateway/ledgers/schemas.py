"""Views of the notification and dead-letter ledgers."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

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
    retries: int = Field(default=0, description="How many times it was re-driven")
    retried_at: UtcDateTime | None = Field(default=None, description="The latest re-drive")
    retried_by: str = Field(default="", description="Who asked for the latest re-drive")
    outcome: Literal["succeeded", "failed"] | None = Field(
        default=None, description="How the latest re-drive went; null if never re-driven"
    )
    retry_error: str = Field(default="", description="Why the latest re-drive failed")
