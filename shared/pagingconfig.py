"""Who gets paged: people's contact methods, on-call schedules and escalation policies.

All three are configuration owned by the notifier (file and API alike). Times of day
and handoffs are in the schedule's time zone, so a rotation keeps its local handoff
across daylight-saving changes.
"""

from __future__ import annotations

import re
from datetime import date, datetime, time
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, field_validator, model_validator

from shared.configtypes import Duration, Name, Strict

UserName = Annotated[str, Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.@\-]+$")]
_CLOCK = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")


def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"unknown time zone {name!r} (use an IANA name like Europe/Berlin)"
        ) from None


class ContactMethod(Strict):
    """A channel that reaches this person, and their address on it."""

    channel: Name = Field(description="The channel the message goes through")
    address: str = Field(
        default="",
        max_length=500,
        description="Their address on it: an email address, a Slack user id, a PagerDuty "
        "routing key; empty = the channel's own target",
    )


class ContactConfig(Strict):
    """A person's contact methods, tried together when a step notifies them."""

    name: UserName = Field(description="The user's name, as in `vigil user`")
    methods: list[ContactMethod] = Field(min_length=1, max_length=10)


class Layer(Strict):
    """One rotation: users take turns, each for one shift, handing over at ``handoff``."""

    name: Name
    users: list[UserName] = Field(min_length=1, max_length=100)
    rotation: Literal["daily", "weekly", "custom"] = "weekly"
    shift: Duration | None = Field(
        default=None, gt=0, le=90 * 86400, description="Shift length of a custom rotation"
    )
    start: str = Field(
        description="The first shift's day (YYYY-MM-DD), in the schedule's time zone; a "
        "weekly rotation hands over on this weekday"
    )
    handoff: str = Field(default="09:00", description="Time of day of each handoff (HH:MM)")

    @field_validator("start")
    @classmethod
    def _day(cls, value: str) -> str:
        try:
            date.fromisoformat(value)
        except ValueError:
            raise ValueError(f"{value!r} is not a date like 2026-01-05") from None
        return value

    @field_validator("handoff")
    @classmethod
    def _clock(cls, value: str) -> str:
        if not _CLOCK.match(value):
            raise ValueError(f"{value!r} is not a time of day like 09:00")
        return value

    @model_validator(mode="after")
    def _shift(self) -> Layer:
        if self.rotation == "custom" and self.shift is None:
            raise ValueError("shift is required for a custom rotation")
        if self.rotation != "custom" and self.shift is not None:
            raise ValueError("shift is only for a custom rotation")
        return self

    @property
    def first_handoff_local(self) -> datetime:
        return datetime.combine(date.fromisoformat(self.start), time.fromisoformat(self.handoff))


class Override(Strict):
    """Someone covers a stretch of time for whoever the layers say."""

    user: UserName
    start: str = Field(description="ISO 8601; without an offset, in the schedule's time zone")
    end: str = Field(description="ISO 8601; after start")

    @field_validator("start", "end")
    @classmethod
    def _instant(cls, value: str) -> str:
        try:
            datetime.fromisoformat(value)
        except ValueError:
            raise ValueError(f"{value!r} is not a date and time like 2026-12-01T02:00") from None
        return value


class ScheduleConfig(Strict):
    """Layers from bottom to top: a higher layer's shift wins where it has one; an
    override wins over every layer."""

    name: Name
    time_zone: str = Field(default="UTC", max_length=64)
    layers: list[Layer] = Field(min_length=1, max_length=10)
    overrides: list[Override] = Field(default_factory=list, max_length=500)

    @field_validator("time_zone")
    @classmethod
    def _zone(cls, value: str) -> str:
        zone(value)
        return value

    @model_validator(mode="after")
    def _overrides_in_order(self) -> ScheduleConfig:
        tz = zone(self.time_zone)
        for index, override in enumerate(self.overrides):
            start = datetime.fromisoformat(override.start)
            end = datetime.fromisoformat(override.end)
            start = start if start.tzinfo else start.replace(tzinfo=tz)
            end = end if end.tzinfo else end.replace(tzinfo=tz)
            if end <= start:
                raise ValueError(f"overrides[{index}]: end must be after start")
        return self


class EscalationTarget(Strict):
    """Exactly one of: a channel, a person (their contact methods), a schedule (whoever
    is on call when the step fires)."""

    channel: Name | None = None
    user: UserName | None = None
    schedule: Name | None = None

    @model_validator(mode="after")
    def _one(self) -> EscalationTarget:
        given = [n for n in ("channel", "user", "schedule") if getattr(self, n) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of channel, user or schedule")
        return self


class EscalationStep(Strict):
    delay: Duration = Field(
        default=0.0,
        le=7 * 86400,
        description="How long after the previous step (the first: after the alert fired) "
        "this one fires, unless the alert was acknowledged or resolved",
    )
    notify: list[EscalationTarget] = Field(min_length=1, max_length=20)


class EscalationPolicyConfig(Strict):
    name: Name
    steps: list[EscalationStep] = Field(min_length=1, max_length=20)
    repeat: int = Field(
        default=0, ge=0, le=20, description="How many more times the steps run when nobody answers"
    )
    ack_timeout: Duration | None = Field(
        default=None,
        gt=0,
        le=7 * 86400,
        description="An acknowledged alert not resolved within this long escalates again",
    )
