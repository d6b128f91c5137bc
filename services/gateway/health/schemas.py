"""Views of the health section."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from services.gateway.common.schemas import Public, UtcDateTime

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


ComponentStatus = Literal["ok", "degraded", "failing", "unknown"]


class ComponentPublic(Public):
    name: str = Field(description="nats, database:<service>, consumer:<durable>, disk, synthetic")
    kind: Literal["nats", "database", "consumer", "disk", "synthetic"]
    status: ComponentStatus = Field(
        description="failing: pages may not go out; degraded: an operator is needed; "
        "unknown: not reported (yet)"
    )
    detail: str
    facts: dict[str, Any] = Field(default_factory=dict, description="The figures behind it")


class HealthChecksPublic(Public):
    status: HealthStatus = Field(description="The worst component; unknown counts as degraded")
    components: list[ComponentPublic]
