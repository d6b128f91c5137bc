"""Bodies of the alerts section: updates come in, the alert goes out."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator

from services.gateway.common.schemas import Body, Public, TimelineEntryPublic, UtcDateTime
from shared.events import Severity, SuppressionKind

AlertStatus = Literal["firing", "acknowledged", "resolved"]


class SuppressionPublic(Public):
    """One reason the alert pages nobody."""

    kind: SuppressionKind
    id: str = Field(
        description="The silence id, the inhibiting alert's id, the maintenance window's "
        "name, or the series fingerprint for flapping"
    )
    detail: str = Field(default="", description="The silence's comment, the inhibiting rule...")
    until: UtcDateTime | None = Field(default=None, description="When it ends by itself")


class AlertPublic(Public):
    id: str
    rule: str
    fingerprint: str
    metric: str
    labels: dict[str, str]
    severity: Severity
    status: AlertStatus
    value: float | None
    threshold: float | None
    summary: str
    fired_at: UtcDateTime | None
    acknowledged_at: UtcDateTime | None
    acknowledged_by: str | None
    resolved_at: UtcDateTime | None
    resolved_by: str | None
    version: int
    updated_at: UtcDateTime
    suppressed_by: list[SuppressionPublic] = Field(
        default_factory=list,
        description="Why it pages nobody as of its latest event; empty: it pages as routed",
    )
    flapping: bool = Field(default=False, description="Its series flips too often to page")

    @field_validator("suppressed_by", mode="before")
    @classmethod
    def _none_is_empty(cls, value: Any) -> Any:
        return [] if value is None else value


class AlertDetailPublic(AlertPublic):
    timeline: list[TimelineEntryPublic]


class AlertAckUpdate(Body):
    """The actor is the authenticated identity, never a field."""

    comment: str = Field(default="", max_length=2000)


class AlertResolveUpdate(Body):
    """Nothing to say: the actor is the authenticated identity."""


class ExplainStepPublic(Public):
    at: UtcDateTime
    what: str = Field(description="fired, suppressed, paged, delivered, escalation ...")
    detail: str


class FiredByPublic(Public):
    """The rule and the sample that fired the alert."""

    rule: str
    metric: str
    severity: Severity
    reason: str = Field(description="threshold, or absent (no data)")
    value: float
    threshold: float
    source_seq: int = Field(
        description="METRICS stream sequence of the sample's batch (0: a log rule's count)"
    )
    source_index: int = Field(description="The sample's position in its batch")
    at: UtcDateTime


class AlertExplanationPublic(Public):
    """Why an alert paged, or did not: from its events, its escalation and deliveries."""

    alert_id: str
    status: AlertStatus
    verdict: str = Field(description='One line: "paged alice via slack at ..." or "not paged: ..."')
    paged: bool
    fired_by: FiredByPublic | None
    suppressed_by: list[SuppressionPublic] = Field(description="As of its latest event")
    flapping: bool
    channels: list[str] = Field(description="Channels its notifications were delivered to")
    escalation_policies: list[str]
    steps: list[ExplainStepPublic] = Field(description="What happened, in time order")


class RuleMatchPublic(Public):
    name: str
    metric: str
    matches: bool
    why: str


class LogCountPublic(Public):
    """A log rule's count for the series now: what its thresholds are judged against."""

    count: int = Field(description="Matching lines in the window now")
    window_s: float
    since: float = Field(description="Unix seconds: where the window starts")
    until: float = Field(description="Unix seconds: now")
    warning: float | None
    critical: float | None
    by: list[str] = Field(description="The labels that split the rule's series")


class LabelsExplanationPublic(Public):
    """What a rule would do with a label set now: whether it watches it, what would keep
    its alert quiet, and (when there is one) its latest alert explained."""

    rule: RuleMatchPublic
    labels: dict[str, str]
    fingerprint: str
    severity: Severity = Field(description="The severity the suppression was worked out for")
    suppressed_by: list[SuppressionPublic] = Field(description="What applies now")
    flapping: bool
    verdict: str
    alert: AlertExplanationPublic | None = Field(
        description="The series' latest alert, explained, if it has one"
    )
    logs: LogCountPublic | None = Field(
        default=None, description="A log rule's count and window for the series now"
    )
