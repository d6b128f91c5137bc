"""What every section's public views share: UTC times and timelines."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict


def _as_utc(value: datetime) -> datetime:
    """SQLite hands back naive datetimes; everything stored is UTC."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


UtcDateTime = Annotated[datetime, AfterValidator(_as_utc)]


class Public(BaseModel):
    """A view sent out: built from read-model rows."""

    model_config = ConfigDict(from_attributes=True)


class Body(BaseModel):
    """A body taken in: unknown fields are refused by name."""

    model_config = ConfigDict(extra="forbid")


class TimelineEntryPublic(Public):
    seq: int
    type: str
    time: UtcDateTime
    by: str
    detail: str
    event: dict[str, Any]
