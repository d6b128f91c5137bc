"""The event envelope every message on the log carries, and the type registry.

Events are flat JSON objects: envelope fields plus the payload fields of the
concrete event type. ``type`` names the class so any consumer can decode any
message without knowing in advance what it will receive.
"""

from __future__ import annotations

import builtins
import re
import uuid
from datetime import UTC, datetime
from typing import Any, ClassVar, TypeVar

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError

EVENT_NAMESPACE = uuid.UUID("6f1c7f3e-8a8e-4d8e-9c55-1f0b1d0a7a11")


def utcnow() -> datetime:
    return datetime.now(UTC)


def derived_id(*parts: object) -> str:
    """A deterministic id: the same inputs (e.g. a redelivered trigger) give the same id."""
    return str(uuid.uuid5(EVENT_NAMESPACE, "/".join(str(p) for p in parts)))


def new_id() -> str:
    return str(uuid.uuid4())


class Event(BaseModel):
    """Envelope fields shared by every event; subclasses add the payload."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    registry: ClassVar[dict[str, builtins.type[Event]]] = {}
    SCHEMA_VERSION: ClassVar[int] = 1

    id: str = Field(default_factory=new_id, description="Unique event id, sent as Nats-Msg-Id")
    type: str = Field(default="", description="Event class name")
    aggregate_id: str = Field(description="Id of the aggregate this event belongs to")
    version: int = Field(default=1, ge=1, description="Aggregate version after this event")
    time: datetime = Field(default_factory=utcnow)
    correlation_id: str = Field(default="", description="Id of the flow this event is part of")
    causation_id: str = Field(default="", description="Id of the message that caused this one")
    schema_version: int = Field(default=1, description="Schema version of this event type")

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        Event.registry[cls.__name__] = cls

    def model_post_init(self, context: Any, /) -> None:
        if not self.type:
            object.__setattr__(self, "type", type(self).__name__)
        if not self.correlation_id:
            object.__setattr__(self, "correlation_id", self.id)
        if self.schema_version != type(self).SCHEMA_VERSION:
            object.__setattr__(self, "schema_version", type(self).SCHEMA_VERSION)

    def encode(self) -> bytes:
        return orjson.dumps(self.model_dump(mode="json"))

    @classmethod
    def from_payload(cls, payload: bytes) -> Event:
        """The event ``encode`` wrote; raises ValidationError or UndecodableEvent."""
        return cls.model_validate_json(payload)

    def caused(self) -> dict[str, str]:
        """Envelope fields for an event caused by this one."""
        return {"correlation_id": self.correlation_id, "causation_id": self.id}


class UndecodableEvent(ValueError):
    """A message on the bus that is not a known, valid event: it goes to the dead letters."""


E = TypeVar("E", bound=Event)


_TYPE_FIELD = re.compile(rb'"type":"([A-Za-z]{1,64})"')


def decode_event(payload: bytes) -> Event:
    # Fast path: our own encoding puts "type" near the start, so the class is known and
    # pydantic parses and validates the JSON in one pass (sample batches are large).
    found = _TYPE_FIELD.search(payload, 0, 256)
    if found is not None:
        cls = Event.registry.get(found.group(1).decode())
        if cls is not None:
            try:
                return cls.from_payload(payload)
            except ValidationError:
                pass  # the slow path below gives the precise reason
    try:
        raw = orjson.loads(payload)
    except orjson.JSONDecodeError as exc:
        raise UndecodableEvent(f"not JSON: {exc}") from exc
    if not isinstance(raw, dict):
        raise UndecodableEvent("event must be a JSON object")
    kind = raw.get("type")
    cls = Event.registry.get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise UndecodableEvent(f"unknown event type {kind!r}")
    try:
        return cls.model_validate(raw)
    except ValidationError as exc:
        raise UndecodableEvent(f"invalid {kind}: {exc}") from exc
