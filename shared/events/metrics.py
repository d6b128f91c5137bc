"""Metric samples: what the gateway, the agent and the synthetic prober publish."""

from __future__ import annotations

from typing import Annotated, Any, NotRequired

import orjson
from pydantic import ConfigDict, Field, with_config
from typing_extensions import TypedDict

from shared.events.base import Event

METRIC_NAME_PATTERN = r"^[a-zA-Z_:][a-zA-Z0-9_:.]*$"
MAX_BATCH_SAMPLES = 10_000
MAX_BATCH_BYTES = 5 * 1024 * 1024

LabelName = Annotated[str, Field(min_length=1, max_length=128)]
LabelValue = Annotated[str, Field(max_length=1024)]
LabelMap = dict[LabelName, LabelValue]


@with_config(ConfigDict(extra="forbid", strict=True))
class Sample(TypedDict):
    """One measurement. ``timestamp`` is Unix seconds; absent means "when received".

    A TypedDict rather than a model: batches of thousands are validated on every hop,
    and plain dicts validate several times faster. After validation every key is present.
    """

    name: Annotated[str, Field(min_length=1, max_length=200, pattern=METRIC_NAME_PATTERN)]
    value: Annotated[float, Field(allow_inf_nan=False)]
    timestamp: NotRequired[Annotated[float | None, Field(default=None, allow_inf_nan=False)]]
    labels: NotRequired[Annotated[LabelMap, Field(default_factory=dict)]]


class SamplesIngested(Event):
    """A batch of samples accepted as a whole; aggregate_id names the source."""

    samples: list[Sample]
    received_at: float = Field(description="Unix seconds when the batch was accepted")

    @classmethod
    def of_validated(cls, samples: list[Sample], **envelope: Any) -> SamplesIngested:
        """A batch from samples that were validated already: checking thousands of them
        again would double the cost of ingest."""
        return cls.model_construct(samples=samples, **envelope)

    def encode(self) -> bytes:
        # samples are plain dicts: orjson writes them directly, without a model dump
        body = self.model_dump(mode="json", exclude={"samples"})
        body["samples"] = self.samples
        return orjson.dumps(body)
