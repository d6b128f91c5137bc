"""Metric samples: what the gateway, the agent and the synthetic prober publish."""

from __future__ import annotations

import math
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StrictFloat, StrictInt, field_validator

from shared.events.base import Event

METRIC_NAME_PATTERN = r"^[a-zA-Z_:][a-zA-Z0-9_:.]*$"
MAX_BATCH_SAMPLES = 10_000
MAX_BATCH_BYTES = 5 * 1024 * 1024

LabelName = Annotated[str, Field(min_length=1, max_length=128)]
LabelValue = Annotated[str, Field(max_length=1024)]
LabelMap = dict[LabelName, LabelValue]


class Sample(BaseModel):
    """One measurement. ``timestamp`` is Unix seconds; absent means "when received"."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    name: str = Field(min_length=1, max_length=200, pattern=METRIC_NAME_PATTERN)
    value: StrictFloat | StrictInt
    timestamp: StrictFloat | StrictInt | None = None
    labels: LabelMap = Field(default_factory=dict)

    @field_validator("value", "timestamp")
    @classmethod
    def _finite(cls, value: float | None) -> float | None:
        try:
            finite = value is None or math.isfinite(value)
        except OverflowError:  # an integer too large for a float
            finite = False
        if not finite:
            raise ValueError("must be a finite number (no NaN or infinity)")
        return value


class SamplesIngested(Event):
    """A batch of samples accepted as a whole; aggregate_id names the source."""

    samples: list[Sample]
    received_at: float = Field(description="Unix seconds when the batch was accepted")
