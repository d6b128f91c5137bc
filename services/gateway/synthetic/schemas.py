"""Bodies of the synthetic section."""

from __future__ import annotations

from services.gateway.common.schemas import Public, UtcDateTime
from shared.commands import ConfigureCheck


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
