"""Synthetic check definitions and run results."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from shared.events.base import Event


class CheckConfigured(Event):
    """A check was created or its definition changed (from config or the API)."""

    name: str
    kind: Literal["http"] = "http"
    url: str
    method: str = "GET"
    expected_status: int = 200
    timeout_s: float = 10.0
    interval_s: float = 30.0
    failures_before_alert: int = 3
    enabled: bool = True
    source: Literal["file", "api", "config"] = Field(
        default="api",
        description="file: from the configuration file, read-only through the API "
        '(older events say "config"); api: made through the API',
    )
    allow_unsafe_method: bool = False


class CheckRemoved(Event):
    name: str


class CheckRunRecorded(Event):
    name: str
    ok: bool
    status_code: int | None = None
    latency_ms: float
    error: str = ""
    consecutive_failures: int = Field(ge=0)
    trigger: Literal["schedule", "manual"] = "schedule"
