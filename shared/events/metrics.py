"""Metric samples: what the gateway, the agent and the synthetic prober publish."""

from __future__ import annotations

from typing import Annotated, Any, NotRequired

import orjson
from pydantic import ConfigDict, Field, with_config
from typing_extensions import TypedDict

from shared.events.base import Event
from shared.labels import (
    LABEL_NAME_PATTERN,
    MAX_LABEL_NAME_CHARS,
    MAX_LABEL_VALUE_CHARS,
    MAX_LABELS,
    PRINTABLE_PATTERN,
)

METRIC_NAME_PATTERN = r"^[a-zA-Z_:][a-zA-Z0-9_:.]*$"
MAX_METRIC_NAME_CHARS = 200
MAX_BATCH_SAMPLES = 10_000
MAX_BATCH_BYTES = 5 * 1024 * 1024
# how far ahead of its arrival a sample may be stamped (clock skew); how far back is the
# metrics retention (Settings.metrics_retention_s)
MAX_FUTURE_S = 300.0

LabelName = Annotated[
    str, Field(min_length=1, max_length=MAX_LABEL_NAME_CHARS, pattern=LABEL_NAME_PATTERN)
]
LabelValue = Annotated[str, Field(max_length=MAX_LABEL_VALUE_CHARS, pattern=PRINTABLE_PATTERN)]
LabelMap = Annotated[dict[LabelName, LabelValue], Field(max_length=MAX_LABELS)]


@with_config(ConfigDict(extra="forbid", strict=True))
class Sample(TypedDict):
    """One measurement. ``timestamp`` is Unix seconds; absent means "when received".

    Labels are bounded here, on every hop: at most ``MAX_LABELS``, Prometheus names,
    printable values of at most ``MAX_LABEL_VALUE_CHARS``. The timestamp's window depends
    on when the batch arrived, so the gateway checks it (``parse_sample_batch``).

    A TypedDict rather than a model: batches of thousands are validated on every hop,
    and plain dicts validate several times faster. After validation every key is present.
    """

    name: Annotated[
        str, Field(min_length=1, max_length=MAX_METRIC_NAME_CHARS, pattern=METRIC_NAME_PATTERN)
    ]
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
