"""Bodies of the metrics section."""

from __future__ import annotations

from pydantic import Field

from services.gateway.common.schemas import Public


class SampleBatchPublic(Public):
    accepted: int = Field(description="Samples stored in this batch")
    batch_id: str = Field(description="Event id of the batch (the Idempotency-Key when given)")
    seq: int = Field(description="METRICS stream sequence the batch was stored at")
