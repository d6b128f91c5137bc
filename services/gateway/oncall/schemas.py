"""The answer to "who is on call": the person, why (layer or override), until when, and how
they are reached."""

from __future__ import annotations

from pydantic import Field

from services.gateway.common.schemas import Public, UtcDateTime
from shared.pagingconfig import ContactMethod


class ShiftPublic(Public):
    user: str
    layer: str = Field(description='The layer\'s name, or "override"')
    override: bool
    start: UtcDateTime
    end: UtcDateTime


class OnCallPublic(Public):
    schedule: str
    at: UtcDateTime
    user: str | None = Field(description="Nobody (null) before any layer's first handoff")
    layer: str | None
    override: bool
    shift_start: UtcDateTime | None
    shift_end: UtcDateTime | None = Field(description="The next change of who is on call")
    contacts: list[ContactMethod] = Field(
        description="How the person on call is paged; empty when they have no contact methods"
    )
    shifts: list[ShiftPublic] | None = Field(
        default=None,
        description="Everyone on call between from and to (cut to that range), when asked",
    )
