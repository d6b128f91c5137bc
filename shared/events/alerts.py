"""Alert aggregate events. Each carries the alert's identity so consumers need no lookup."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from shared.events.base import Event

Severity = Literal["warning", "critical"]
SuppressionKind = Literal["silence", "inhibition", "maintenance", "flapping"]


class SuppressionRef(BaseModel):
    """One reason an alert pages nobody right now, and where it comes from."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: SuppressionKind
    id: str = Field(
        description="The silence id, the inhibiting alert's id, the maintenance window's "
        "name, or the series fingerprint for flapping"
    )
    detail: str = Field(default="", description="For people: the comment, the rule, ...")
    until: datetime | None = Field(
        default=None, description="When it ends by itself, if known (silence, window)"
    )


class AlertEvent(Event):
    rule: str
    fingerprint: str = Field(description="Hash of rule name and label set")
    metric: str
    labels: dict[str, str] = Field(default_factory=dict)
    severity: Severity
    source_seq: int = Field(
        default=0,
        ge=0,
        description="METRICS stream sequence of the sample batch that caused this transition; "
        "0 when a command did",
    )
    source_index: int = Field(default=0, ge=0, description="Position of that sample in its batch")
    suppressed_by: list[SuppressionRef] = Field(
        default_factory=list,
        description="Why this alert pages nobody at this event; empty: it pages as routed",
    )


class AlertFired(AlertEvent):
    value: float = Field(
        description="The evaluated value (a window's result, a ratio); "
        "for 'absent', the seconds since the series was last seen"
    )
    threshold: float
    summary: str = ""
    reason: Literal["threshold", "absent"] = Field(
        default="threshold", description="absent: the series stopped reporting ('no data')"
    )
    annotations: dict[str, str] = Field(
        default_factory=dict,
        description="The rule's rendered annotations: summary, description, runbook_url, "
        "dashboard_url, and any other",
    )


class AlertEscalated(AlertEvent):
    previous_severity: Severity
    value: float
    threshold: float
    annotations: dict[str, str] = Field(default_factory=dict)


class AlertAcknowledged(AlertEvent):
    by: str
    comment: str = ""


class AlertResolved(AlertEvent):
    by: str = Field(default="", description="Who resolved it; empty when the value recovered")
    reason: Literal["recovered", "manual", "rule_deleted"] = Field(
        default="recovered",
        description="recovered: the value went back; manual: resolved by hand; "
        "rule_deleted: its rule was deleted",
    )
    value: float | None = None


class AlertSuppressionChanged(AlertEvent):
    """An open alert's reasons not to page changed (a silence or window began or ended, an
    inhibiting alert fired or resolved). When ``suppressed_by`` becomes empty while the
    alert fires unacknowledged, it pages then, once."""

    previous: list[SuppressionRef] = Field(default_factory=list)
    status: Literal["firing", "acknowledged"] = "firing"


class AlertFlapping(AlertEvent):
    """The series changed state more than the limit within the window: this is the one
    notification about it; its flips page nobody until it settles."""

    changes: int = Field(ge=1, description="State changes counted within the window")
    window_s: float = Field(gt=0)


class AlertSettled(AlertEvent):
    """A flapping series held one state for the whole window; ``status`` is that state."""

    status: Literal["firing", "acknowledged", "resolved"]
