"""Silences: matchers and a time span, in Alertmanager's v2 shape, as events on SILENCES.

A silence never changes its matchers in place: as in Alertmanager, an update that
changes them expires the old silence and creates a new one; one that only moves the
end or the comment is a SilenceUpdated.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from shared.events.base import Event


class SilenceMatcher(BaseModel):
    """Alertmanager's matcher: ``isEqual: false`` negates (``!=`` / ``!~``)."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    name: str = Field(min_length=1, max_length=200)
    value: str = Field(max_length=1000)
    is_regex: bool = Field(default=False, alias="isRegex")
    is_equal: bool = Field(default=True, alias="isEqual")


class SilenceEvent(Event):
    """``aggregate_id`` is the silence id."""


class SilenceCreated(SilenceEvent):
    matchers: list[SilenceMatcher] = Field(min_length=1)
    starts_at: datetime
    ends_at: datetime
    created_by: str = Field(description="Alertmanager's createdBy: the author as given")
    comment: str = ""
    by: str = Field(default="", description="The authenticated identity that made it")


class SilenceUpdated(SilenceEvent):
    starts_at: datetime
    ends_at: datetime
    created_by: str
    comment: str = ""
    by: str = Field(default="", description="The authenticated identity that changed it")


class SilenceExpired(SilenceEvent):
    """Ended early by someone (an end reached by itself needs no event): it ends at the
    event's time, and one not yet started never starts."""

    by: str
