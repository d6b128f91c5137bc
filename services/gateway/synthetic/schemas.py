"""Bodies of the synthetic section: a check is written as in the YAML file's ``checks:``."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from services.gateway.common.durations import DurationText
from services.gateway.common.schemas import Public, UtcDateTime
from shared.config import SAFE_METHODS, CheckConfig


class CheckCreate(CheckConfig):
    """A check as the YAML file writes it (``timeout: 10s``, ``interval: 30s``; numbers of
    seconds are read too), plus whether it runs. Creates the check, or changes the one
    with the same name."""

    enabled: bool = True

    def command(self) -> dict[str, Any]:
        """The fields of the synthetic service's ConfigureCheck command."""
        return {
            "name": self.name,
            "kind": self.type,
            "url": self.url,
            "method": self.method,
            "expected_status": self.expected_status,
            "timeout_s": self.timeout_s,
            "interval_s": self.interval_s,
            "failures_before_alert": self.failures_before_alert,
            "enabled": self.enabled,
            "allow_unsafe_method": self.allow_unsafe_method,
        }


class CheckPublic(Public):
    id: str
    name: str
    type: Literal["http"]
    url: str
    method: str
    expected_status: int
    timeout: DurationText = Field(examples=["10s"])
    interval: DurationText = Field(examples=["30s"])
    failures_before_alert: int
    allow_unsafe_method: bool = Field(
        default=False,
        description="The method is other than GET or HEAD, which an admin allowed",
    )
    enabled: bool
    source: str = Field(description='"file": managed in the configuration file, read-only here')
    version: int
    configured_at: UtcDateTime
    last_ok: bool | None
    last_status_code: int | None
    last_latency_ms: float | None
    last_error: str | None
    last_run_at: UtcDateTime | None
    consecutive_failures: int

    @model_validator(mode="before")
    @classmethod
    def _from_row(cls, row: Any) -> Any:
        """Read-model rows keep the command's column names."""
        if isinstance(row, dict) or hasattr(row, "keys"):
            values = dict(row)
            if "kind" in values:
                values.setdefault("type", values.pop("kind"))
            if "timeout_s" in values:
                values.setdefault("timeout", values.pop("timeout_s"))
            if "interval_s" in values:
                values.setdefault("interval", values.pop("interval_s"))
            if "method" in values:  # a stored check with another method was allowed one
                values.setdefault("allow_unsafe_method", values["method"] not in SAFE_METHODS)
            return values
        return row


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
