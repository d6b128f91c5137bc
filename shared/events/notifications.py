"""The delivery ledger's events: one outcome per (event, channel, recipient)."""

from __future__ import annotations

from pydantic import Field

from shared.events.base import Event


class NotificationOutcome(Event):
    """aggregate_id is the delivery id: derived from (event id, channel[, recipient])."""

    event_id: str
    event_type: str
    channel: str
    attempts: int
    subject_id: str = Field(
        default="", description="The alert or incident the event was about (its timeline)"
    )
    recipient: str = Field(default="", description="A person's address; empty = the channel's")
    user: str = Field(default="", description="The person paged, when an escalation step did")
    digest: str = Field(
        default="",
        description="The delivery id of the message this one went out in, when it was merged "
        "into a digest (rate limit or grouping); empty when it had a message of its own",
    )


class NotificationDelivered(NotificationOutcome):
    status_code: int | None = None
    latency_ms: float
    thread: str = Field(
        default="",
        description="What later messages about the same subject refer to (a Slack "
        "message, an email thread); empty when the channel has no such thing",
    )


class NotificationFailed(NotificationOutcome):
    error: str
    permanent: bool
    gave_up: bool = Field(
        default=False,
        description="Retried for the channel's whole retry window, then dead-lettered",
    )


class NotificationQueued(NotificationOutcome):
    """Accepted for a channel that cannot take it now: its group waits for
    ``group_interval``, the channel is rate limited, or the receiver failed and it is
    being retried. Carries what is needed to send it after a restart."""

    trigger: str = Field(description="The event to notify, as it was on its stream (JSON)")
    origin_stream: str
    origin_seq: int
    origin_consumer: str
    origin_subject: str
    group: str = Field(description="Messages of one group are merged while they wait")
    error: str = Field(default="", description="Why the last attempt failed, if one did")
