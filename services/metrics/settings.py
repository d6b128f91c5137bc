"""Settings only the metrics service reads (VIGIL_METRICS_*), kept beside the service.

The raw retention itself (VIGIL_METRICS_RETENTION_S) is in shared settings: the gateway
refuses timestamps older than it.
"""

from __future__ import annotations

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DAY_S = 24 * 3600.0


class MetricsSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="VIGIL_METRICS_", extra="ignore")

    retention_interval_s: float = Field(
        default=3600.0, gt=0, description="How often the retention pass runs"
    )
    retention_1m_s: float = Field(default=90 * DAY_S, gt=0, description="1-minute rollups kept")
    retention_5m_s: float = Field(default=180 * DAY_S, gt=0, description="5-minute rollups kept")
    retention_1h_s: float = Field(default=730 * DAY_S, gt=0, description="1-hour rollups kept")
    block_s: int = Field(
        default=3600,
        ge=3600,
        multiple_of=3600,
        description="Span of one block of samples: the unit of compaction and raw retention",
    )
    compaction_grace_s: float = Field(
        default=600.0,
        ge=0,
        description="A block is compacted this long after it ends, so late samples still "
        "land in it first",
    )
    compaction_interval_s: float = Field(
        default=300.0, gt=0, description="How often finished blocks are looked for"
    )
    memory_limit: str = Field(
        default="256MB", min_length=2, description="DuckDB memory_limit of the store"
    )
    threads: int = Field(default=2, ge=1, le=64, description="DuckDB worker threads")

    @field_validator("block_s")
    @classmethod
    def _divides_a_day(cls, value: int) -> int:
        """A block must lie inside one rollup partition (whole days)."""
        if 86_400 % value:
            raise ValueError("must divide a day: 3600, 7200, 10800, 14400, 21600, 28800...")
        return value
