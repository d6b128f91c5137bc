"""HTTP bodies: XCreate / XUpdate come in, XPublic goes out.

Bodies for commands on an existing aggregate carry types only: the constraints live
once, in the shared command models, which the gateway validates before sending.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from shared.commands import ConfigureCheck, OpenIncident
from shared.events import IncidentSeverity, IncidentStatus, Severity


def _as_utc(value: datetime) -> datetime:
    """SQLite hands back naive datetimes; everything stored is UTC."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


UtcDateTime = Annotated[datetime, AfterValidator(_as_utc)]
AlertStatus = Literal["firing", "acknowledged", "resolved"]


class Public(BaseModel):
    model_config = ConfigDict(from_attributes=True)


# --- metrics -----------------------------------------------------------------


class SampleBatchPublic(Public):
    accepted: int = Field(description="Samples stored in this batch")
    batch_id: str = Field(description="Event id of the batch (the Idempotency-Key when given)")
    seq: int = Field(description="METRICS stream sequence the batch was stored at")


# --- alerts ------------------------------------------------------------------


class TimelineEntryPublic(Public):
    seq: int
    type: str
    time: UtcDateTime
    by: str
    detail: str
    event: dict[str, Any]


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


class AlertAckUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    by: str = "api"
    comment: str = ""


class AlertResolveUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    by: str = "api"


# --- incidents ---------------------------------------------------------------


class IncidentPublic(Public):
    id: str
    title: str
    description: str
    severity: IncidentSeverity
    status: IncidentStatus
    assignee: str
    opened_by: str
    alert_id: str
    fingerprint: str
    opened_at: UtcDateTime
    resolved_at: UtcDateTime | None
    version: int
    updated_at: UtcDateTime


class IncidentNotePublic(Public):
    id: str
    text: str
    author: str
    time: UtcDateTime


class IncidentDetailPublic(IncidentPublic):
    timeline: list[TimelineEntryPublic]
    notes: list[IncidentNotePublic]


class IncidentCreate(OpenIncident):
    """Opens an incident by hand; alert-driven incidents are opened by the incidents service."""


class IncidentStatusUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    status: IncidentStatus
    by: str = "api"
    message: str = ""


class IncidentNoteCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: str
    author: str = "api"


class IncidentAssigneeUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    assignee: str
    by: str = "api"


class IncidentSeverityUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    severity: IncidentSeverity
    by: str = "api"


# --- synthetic ---------------------------------------------------------------


class CheckCreate(ConfigureCheck):
    """Creates a check, or changes the one with the same name."""


class CheckPublic(Public):
    id: str
    name: str
    kind: str
    url: str
    method: str
    expected_status: int
    timeout_s: float
    interval_s: float
    failures_before_alert: int
    enabled: bool
    source: str
    version: int
    configured_at: UtcDateTime
    last_ok: bool | None
    last_status_code: int | None
    last_latency_ms: float | None
    last_error: str | None
    last_run_at: UtcDateTime | None
    consecutive_failures: int


class CheckResultPublic(Public):
    seq: int
    check_id: str
    name: str
    ok: bool
    status_code: int | None
    latency_ms: float
    error: str
    consecutive_failures: int
    trigger: str
    time: UtcDateTime


# --- ledger views ------------------------------------------------------------


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


# --- health ------------------------------------------------------------------


HealthStatus = Literal["ok", "degraded", "failing"]


class ProblemPublic(Public):
    component: str = Field(description="What is affected, e.g. service:alerts, disk:metrics")
    status: Literal["degraded", "failing"] = Field(
        description="failing: pages may not go out; degraded: paging works, an operator is needed"
    )
    reason: str


class LivenessPublic(Public):
    status: HealthStatus
    nats_connected: bool
    problems: list[ProblemPublic] = Field(default_factory=list)


class ReadinessPublic(Public):
    ready: bool = Field(description="Writes sent to this gateway now would be stored")
    reason: str | None = Field(default=None, description="Why not, when not ready")
    status: HealthStatus
    problems: list[ProblemPublic] = Field(default_factory=list)


class DiskPublic(Public):
    path: str
    free_bytes: int
    total_bytes: int
    writable: bool


class ServiceHealthPublic(Public):
    status: Literal["up", "down"] = Field(description="down after three missed heartbeats")
    last_seen: UtcDateTime | None
    host: str | None
    pid: int | None
    uptime_s: float | None
    restarts: int = Field(default=0, description="New processes seen in the last 15 minutes")
    faults: dict[str, str] = Field(
        default_factory=dict, description="What the service reports wrong, by component"
    )
    disk: DiskPublic | None = Field(default=None, description="The disk under its data dir")


class StreamHealthPublic(Public):
    name: str
    messages: int
    bytes: int
    max_bytes: int = Field(default=-1, description="Byte limit; -1 for none")
    first_seq: int
    last_seq: int


class ConsumerHealthPublic(Public):
    stream: str
    durable: str
    pending: int = Field(description="Messages not yet delivered")
    ack_pending: int = Field(description="Delivered, not yet acknowledged")
    redelivered: int
    ack_floor: int = Field(description="Stream sequence acknowledged up to")
    lag: int = Field(description="pending + ack_pending")
    stalled_s: float = Field(
        default=0.0, description="How long it has had messages waiting and made no progress"
    )


class SystemHealthPublic(Public):
    status: HealthStatus
    problems: list[ProblemPublic] = Field(default_factory=list)
    services: dict[str, ServiceHealthPublic]
    streams: list[StreamHealthPublic]
    consumers: list[ConsumerHealthPublic]


class CheckSummaryPublic(Public):
    id: str
    name: str
    enabled: bool
    last_ok: bool | None
    last_status_code: int | None
    last_latency_ms: float | None
    last_run_at: UtcDateTime | None
    consecutive_failures: int


class DashboardPublic(Public):
    alerts_by_status: dict[str, int]
    alerts_by_severity: dict[str, int] = Field(description="Alerts not yet resolved, by severity")
    alerts_by_status_and_severity: dict[str, dict[str, int]]
    open_incidents_by_status: dict[str, int]
    open_incidents_by_severity: dict[str, int]
    checks: list[CheckSummaryPublic]
    services: dict[str, ServiceHealthPublic]
