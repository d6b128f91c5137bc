"""Alert aggregate events. Each carries the alert's identity so consumers need no lookup."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from shared.events.base import Event

Severity = Literal["warning", "critical"]


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


class AlertFired(AlertEvent):
    value: float
    threshold: float
    summary: str = ""


class AlertEscalated(AlertEvent):
    previous_severity: Severity
    value: float
    threshold: float


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
