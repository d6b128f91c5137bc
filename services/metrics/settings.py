"""Settings only the metrics service reads (VIGIL_METRICS_*), kept beside the service."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

DAY_S = 24 * 3600.0


class MetricsSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="VIGIL_METRICS_", extra="ignore")

    retention_s: float = Field(
        default=7 * DAY_S,
        gt=0,
        description="Samples older than this are deleted from SQL; matches the METRICS stream",
    )
    retention_interval_s: float = Field(
        default=3600.0, gt=0, description="How often the retention pass runs"
    )
    retention_chunk: int = Field(
        default=20_000,
        ge=1,
        description="Rows deleted per transaction, so ingest is never blocked for long",
    )
