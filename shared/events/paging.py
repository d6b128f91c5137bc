"""Escalation of one alert through a policy, on the PAGING stream.

Step deadlines are events, so a restart re-arms the same timers, and every id is
derived from (alert, policy, generation, round, step): a step fired twice by a crash
between publish and checkpoint is one event on the stream and one delivery per target.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from shared.events.base import Event


class PageTarget(BaseModel):
    """One (channel, recipient) a step notifies, and why."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    channel: str
    recipient: str = Field(default="", description="The contact address; empty = the channel's")
    user: str = Field(default="", description="The person, when a user or schedule was paged")
    via: str = Field(default="", description='"channel", "user:<name>" or "schedule:<name>"')


class EscalationEvent(Event):
    """``aggregate_id`` is the escalation: one per (alert, policy, generation)."""

    alert_id: str
    policy: str
    generation: int = Field(
        default=0, ge=0, description="Bumped when an acknowledgement timed out and it restarted"
    )


class EscalationStarted(EscalationEvent):
    fingerprint: str
    rule: str
    severity: str
    labels: dict[str, str] = Field(default_factory=dict)
    summary: str = ""


class EscalationStepScheduled(EscalationEvent):
    step: int = Field(ge=0)
    round: int = Field(ge=0, description="0 the first run through the steps, 1 the first repeat")
    due_at: datetime


class EscalationStepFired(EscalationEvent):
    """A notifiable event: the notifier delivers it to each target."""

    step: int = Field(ge=0)
    round: int = Field(ge=0)
    targets: list[PageTarget]
    fingerprint: str
    rule: str
    severity: str
    metric: str = ""
    labels: dict[str, str] = Field(default_factory=dict)
    summary: str = ""
    unresolved: list[str] = Field(
        default_factory=list, description="Targets that could not be resolved, and why"
    )


class EscalationStopped(EscalationEvent):
    reason: Literal["acknowledged", "resolved", "exhausted", "policy_removed", "suppressed"] = (
        Field(description="suppressed: a silence, window, inhibition or flapping muted the alert")
    )
    by: str = ""


PAGING_EVENTS = (EscalationStarted, EscalationStepScheduled, EscalationStepFired, EscalationStopped)
