"""Log lines: what the gateway (and later OTLP, the logging handler, Vigil itself) publishes."""

from __future__ import annotations

from typing import Annotated, Any, Literal, NotRequired

import orjson
from pydantic import ConfigDict, Field, with_config
from typing_extensions import TypedDict

from shared.events.base import Event
from shared.events.metrics import LabelMap, LabelValue
from shared.settings import LOG_LEVELS

MAX_BATCH_ENTRIES = 10_000
MAX_BATCH_BYTES = 5 * 1024 * 1024
MAX_MESSAGE_BYTES = 32 * 1024
MAX_FIELDS = 64
MAX_FIELDS_BYTES = 8 * 1024
MAX_FIELD_NAME_CHARS = 128

LEVELS: tuple[str, ...] = LOG_LEVELS
Level = Literal["trace", "debug", "info", "warn", "error", "fatal"]
DEFAULT_LEVEL: Level = "info"

# C0 controls other than tab, line feed and carriage return, DEL and the C1 controls: a
# message is free text (several lines, tabs), but never binary
MESSAGE_PATTERN = "^[^\\u0000-\\u0008\\u000B\\u000C\\u000E-\\u001F\\u007F-\\u009F]*$"

FieldName = Annotated[str, Field(min_length=1, max_length=MAX_FIELD_NAME_CHARS)]
FieldValue = str | bool | int | Annotated[float, Field(allow_inf_nan=False)] | None


@with_config(ConfigDict(extra="forbid", strict=True))
class LogEntry(TypedDict):
    """One log line. ``timestamp`` is Unix seconds; absent means "when received".

    ``service`` is the emitting service as a label value (filters and, later, alert
    rules and incidents match on it); ``fields`` is a flat object of structured
    values, kept as given and not indexed for search. A TypedDict for the same reason as
    ``Sample``: batches of thousands are validated on every hop. The gateway normalises
    the level and the ids before validation; after it every key is present.
    """

    message: Annotated[
        str, Field(min_length=1, max_length=MAX_MESSAGE_BYTES, pattern=MESSAGE_PATTERN)
    ]
    timestamp: NotRequired[Annotated[float | None, Field(default=None, allow_inf_nan=False)]]
    level: NotRequired[Annotated[Level, Field(default=DEFAULT_LEVEL)]]
    service: NotRequired[Annotated[LabelValue, Field(default="")]]
    labels: NotRequired[Annotated[LabelMap, Field(default_factory=dict)]]
    fields: NotRequired[
        Annotated[dict[FieldName, FieldValue], Field(default_factory=dict, max_length=MAX_FIELDS)]
    ]
    trace_id: NotRequired[Annotated[str | None, Field(default=None, pattern="^[0-9a-f]{32}$")]]
    span_id: NotRequired[Annotated[str | None, Field(default=None, pattern="^[0-9a-f]{16}$")]]


class LogsIngested(Event):
    """A batch of log lines accepted as a whole; aggregate_id names the source."""

    entries: list[LogEntry]
    received_at: float = Field(description="Unix seconds when the batch was accepted")

    @classmethod
    def of_validated(cls, entries: list[LogEntry], **envelope: Any) -> LogsIngested:
        """A batch from entries that were validated already (as ``SamplesIngested``)."""
        return cls.model_construct(entries=entries, **envelope)

    def encode(self) -> bytes:
        body = self.model_dump(mode="json", exclude={"entries"})
        body["entries"] = self.entries
        return orjson.dumps(body)
