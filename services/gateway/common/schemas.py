"""What every section's public views share: UTC times and timelines."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field


def as_utc(value: datetime) -> datetime:
    """SQLite hands back naive datetimes; everything stored is UTC."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


UtcDateTime = Annotated[datetime, AfterValidator(as_utc)]


def _rfc3339_only(value: Any) -> Any:
    """pydantic reads a number (``0.5``) as Unix seconds, but the API documents its times
    as RFC 3339 date-times and takes only those."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        raise ValueError("expected an RFC 3339 date-time such as 2024-06-01T12:00:00Z")
    if isinstance(value, str):
        try:
            float(value)
        except ValueError:
            return value
        raise ValueError("expected an RFC 3339 date-time such as 2024-06-01T12:00:00Z")
    return value


# a time taken in (query parameter or body field): RFC 3339 only, as documented
DateTimeIn = Annotated[datetime, BeforeValidator(_rfc3339_only)]


class Public(BaseModel):
    """A view sent out: built from read-model rows."""

    model_config = ConfigDict(from_attributes=True)


class Body(BaseModel):
    """A body taken in: unknown fields are refused by name."""

    model_config = ConfigDict(extra="forbid")


class TimelineEntryPublic(Public):
    stream: str = Field(
        default="", description="The stream the entry comes from; seq is its position there"
    )
    seq: int
    type: str
    time: UtcDateTime
    by: str
    detail: str
    event: dict[str, Any]
