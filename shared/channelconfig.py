"""Channels: one typed configuration per kind of receiver, told apart by ``type``.

Each kind lists the fields that are credentials (``SECRET_FIELDS``): those are stored
encrypted, shown as ``"(set)"`` and kept when ``"(set)"`` is sent back. A Slack or
Teams incoming-webhook URL is itself the credential, so it counts as one.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, ClassVar, Literal, get_args

from pydantic import Field, TypeAdapter, field_validator, model_validator

from shared.configtypes import Duration, Name, Strict, compiles

MAX_CHANNEL_TIMEOUT_S = 60.0

ALL_NOTIFIED_EVENTS = (
    "AlertFired",
    "AlertEscalated",
    "AlertAcknowledged",
    "AlertResolved",
    "AlertFlapping",
    "AlertSettled",
    "IncidentOpened",
    "IncidentResolved",
    "EscalationStepFired",
)
# what a channel receives when its ``events`` are not given: acknowledgements update
# what was sent (Slack's message, PagerDuty's incident), so they are in by default
DEFAULT_EVENTS = ALL_NOTIFIED_EVENTS

HttpUrl = Annotated[str, Field(pattern=r"^https?://", max_length=2000)]
SecretUrl = Annotated[
    str,
    Field(
        default="",
        max_length=2000,
        description='A credential URL: stored encrypted, shown as "(set)"',
    ),
]
_EMAIL = re.compile(r"^[^@\s<>,]+@[^@\s<>,]+$")


class MessageTemplate(Strict):
    """Sandboxed Jinja2 over the notification document (docs/notifications.md)."""

    title: str = Field(default="", max_length=2000, description="The subject or heading")
    text: str = Field(default="", max_length=20000, description="The body")

    _compiles = field_validator("title", "text")(compiles)


class ChannelBase(Strict):
    SECRET_FIELDS: ClassVar[tuple[str, ...]] = ()

    name: Name
    type: str  # each kind narrows it to its own literal
    events: list[str] = Field(default_factory=lambda: list(DEFAULT_EVENTS), max_length=20)
    timeout_s: Duration = Field(default=10.0, alias="timeout", gt=0, le=MAX_CHANNEL_TIMEOUT_S)
    rate: float | None = Field(
        default=None,
        gt=0,
        le=1000,
        description="Messages per second this receiver takes (a token bucket); "
        "pending messages of one group are merged into a digest while it is empty",
    )
    burst: int = Field(default=1, ge=1, le=1000, description="Bucket size for ``rate``")
    retry_for_s: Duration = Field(
        default=6 * 3600.0,
        alias="retry_for",
        gt=0,
        le=7 * 86400,
        description="How long a failing receiver is retried (capped backoff) before the "
        "notification is dead-lettered",
    )
    template: MessageTemplate | None = Field(
        default=None, description="Title and text templates; the defaults when absent"
    )

    @field_validator("events")
    @classmethod
    def _known_events(cls, events: list[str]) -> list[str]:
        unknown = sorted(set(events) - set(ALL_NOTIFIED_EVENTS))
        if unknown:
            raise ValueError(f"unknown events {unknown}; choose from {list(ALL_NOTIFIED_EVENTS)}")
        return events

    def secrets(self) -> dict[str, str]:
        return {name: getattr(self, name) for name in self.SECRET_FIELDS}

    def with_secrets(self, values: dict[str, str]) -> ChannelBase:
        return self.model_copy(update=values)


class WebhookChannel(ChannelBase):
    SECRET_FIELDS = ("secret",)

    type: Literal["webhook"]
    url: HttpUrl = Field(description="Where to POST")
    secret: str = Field(
        default="",
        max_length=2000,
        description="HMAC-SHA256 key for the signature headers; stored encrypted, shown "
        'masked as "(set)" (sending "(set)" back keeps it); an "enc:v1:…" value from '
        "`vigil config export` is read as the encrypted form",
    )
    body_template: str = Field(
        default="",
        max_length=20000,
        description="Jinja2 rendering the JSON body instead of the notification document",
    )

    _compiles = field_validator("body_template")(compiles)


class SlackChannel(ChannelBase):
    """An incoming webhook (``url``) or a bot token with ``channel`` (messages updated
    in place on acknowledge and resolve, follow-ups in their thread)."""

    SECRET_FIELDS = ("url", "token")

    type: Literal["slack"]
    url: SecretUrl = ""
    token: str = Field(default="", max_length=500, description="Bot token (xoxb-…)")
    channel: str = Field(default="", max_length=200, description="Channel id for the bot")
    api_url: HttpUrl = Field(default="https://slack.com/api", description="Web API base")

    @model_validator(mode="after")
    def _one_mode(self) -> SlackChannel:
        if bool(self.url) == bool(self.token):
            raise ValueError("give either url (incoming webhook) or token (bot), not both")
        if self.url and not re.match(r"^(https?://|enc:|\(set\)$)", self.url):
            raise ValueError("url must start with http:// or https://")
        if self.token and not self.channel:
            raise ValueError("channel is required with a bot token")
        return self


class PagerDutyChannel(ChannelBase):
    SECRET_FIELDS = ("routing_key",)

    type: Literal["pagerduty"]
    routing_key: str = Field(min_length=1, max_length=500, description="Events v2 key")
    events_url: HttpUrl = "https://events.pagerduty.com/v2/enqueue"
    source: str = Field(default="vigil", min_length=1, max_length=255)


class EmailChannel(ChannelBase):
    SECRET_FIELDS = ("password",)

    type: Literal["email"]
    host: str = Field(min_length=1, max_length=255)
    port: int = Field(default=587, ge=1, le=65535)
    tls: Literal["starttls", "ssl", "none"] = "starttls"
    username: str = Field(default="", max_length=255)
    password: str = Field(default="", max_length=1000)
    from_address: str = Field(alias="from", min_length=3, max_length=255)
    to: list[str] = Field(min_length=1, max_length=100)
    ca_file: str = Field(
        default="", max_length=1000, description="CA bundle for the server's certificate"
    )

    @field_validator("to")
    @classmethod
    def _addresses(cls, to: list[str]) -> list[str]:
        for index, address in enumerate(to):
            if not _EMAIL.match(address):
                raise ValueError(f"to[{index}]: {address!r} is not an email address")
        return to


class TeamsChannel(ChannelBase):
    SECRET_FIELDS = ("url",)

    type: Literal["teams"]
    url: str = Field(min_length=1, max_length=2000, description="Incoming webhook URL")


class DiscordChannel(ChannelBase):
    SECRET_FIELDS = ("url",)

    type: Literal["discord"]
    url: str = Field(min_length=1, max_length=2000, description="Webhook URL")


class AppriseChannel(ChannelBase):
    SECRET_FIELDS = ("urls",)

    type: Literal["apprise"]
    urls: str = Field(
        min_length=1,
        max_length=10000,
        description="Apprise URLs (telegram://, ntfy://, pover://, matrix://, …), "
        "separated by spaces or commas",
    )


class DatadogChannel(ChannelBase):
    SECRET_FIELDS = ("api_key", "app_key")

    type: Literal["datadog"]
    api_key: str = Field(min_length=1, max_length=500)
    app_key: str = Field(default="", max_length=500)
    api_url: HttpUrl = "https://api.datadoghq.com"
    tags: list[str] = Field(default_factory=list, max_length=50)
    metrics: list[str] = Field(
        default_factory=list,
        max_length=200,
        description="Metric names forwarded as DataDog series (none unless listed)",
    )


ChannelConfig = Annotated[
    WebhookChannel
    | SlackChannel
    | PagerDutyChannel
    | EmailChannel
    | TeamsChannel
    | DiscordChannel
    | AppriseChannel
    | DatadogChannel,
    Field(discriminator="type"),
]
CHANNEL_TYPES: tuple[type[ChannelBase], ...] = (
    WebhookChannel,
    SlackChannel,
    PagerDutyChannel,
    EmailChannel,
    TeamsChannel,
    DiscordChannel,
    AppriseChannel,
    DatadogChannel,
)
CHANNEL_KINDS = frozenset(
    get_args(kind.model_fields["type"].annotation)[0] for kind in CHANNEL_TYPES
)
_ADAPTER: TypeAdapter[ChannelBase] = TypeAdapter(ChannelConfig)


def parse_channel(data: Any) -> ChannelBase:
    """A channel from its file or API form (raises pydantic.ValidationError)."""
    return _ADAPTER.validate_python(data)
