"""Messages a consumer gave up on, kept whole so they can be inspected and replayed."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

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


class DeadLetterRetried(Event):
    """A dead letter handed to its consumer's handler again, on an operator's request.

    aggregate_id is the dead letter's id; ``attempt`` counts the re-drives of that dead
    letter (the event's id is derived from both, so a retried request stores it once).
    """

    dead_letter_id: str
    consumer: str
    attempt: int = Field(ge=1)
    by: str
    outcome: Literal["succeeded", "failed"]
    error: str = Field(default="", description="Why the handler failed again; empty on success")
    source: Literal["stream", "payload"] = Field(
        description="stream: the original message was read back from its stream; payload: "
        "the stream no longer held it, the copy kept in the dead letter was used"
    )
