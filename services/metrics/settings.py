"""Settings only the metrics service reads (VIGIL_METRICS_*), kept beside the service.

The retention itself (VIGIL_METRICS_RETENTION_S) is in shared settings: the gateway
refuses timestamps older than it.
"""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class MetricsSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="VIGIL_METRICS_", extra="ignore")

    retention_interval_s: float = Field(
        default=3600.0, gt=0, description="How often the retention pass runs"
    )
    retention_chunk: int = Field(
        default=20_000,
        ge=1,
        description="Rows deleted per transaction, so ingest is never blocked for long",
    )
