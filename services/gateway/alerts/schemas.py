"""Bodies of the alerts section: updates come in, the alert goes out."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from services.gateway.common.schemas import Body, Public, TimelineEntryPublic, UtcDateTime
from shared.events import Severity

AlertStatus = Literal["firing", "acknowledged", "resolved"]


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


class AlertDetailPublic(AlertPublic):
    timeline: list[TimelineEntryPublic]


class AlertAckUpdate(Body):
    """The actor is the authenticated identity, never a field."""

    comment: str = Field(default="", max_length=2000)


class AlertResolveUpdate(Body):
    """Nothing to say: the actor is the authenticated identity."""
