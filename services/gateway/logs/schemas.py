"""Bodies of the logs section."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from services.gateway.common.schemas import Public


class LogBatchPublic(Public):
    accepted: int = Field(description="Lines stored in this batch")
    batch_id: str = Field(description="Event id of the batch (the Idempotency-Key when given)")
    seq: int = Field(description="LOGS stream sequence the batch was stored at")


class LogLinePublic(BaseModel):
    timestamp: float = Field(description="Unix seconds (microsecond precision)")
    level: str
    message: str
    service: str
    labels: dict[str, str]
    fields: dict[str, Any]
    trace_id: str | None
    span_id: str | None


class LogPagePublic(BaseModel):
    entries: list[LogLinePublic] = Field(description="Newest first")
    next_cursor: str | None = Field(
        description="Pass as cursor for the next (older) page; null on the last page"
    )


class LogBucketPublic(BaseModel):
    time: float = Field(description="Start of the bucket, Unix seconds")
    counts: dict[str, int] = Field(description="Lines per level")
    total: int


class LogHistogramPublic(BaseModel):
    start: float
    end: float
    step: float
    buckets: list[LogBucketPublic]
