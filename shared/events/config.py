"""Configuration as events: rules (owned by alerts) and channels (owned by the notifier).

An item changed through the API is an aggregate on its own subject
(``config.rules.<token>``, ``config.channels.<token>``, the token a short hash of the
name). The configuration file's items are provisioned by each owner at start as one
event on ``config.provisioned.<service>``, only when they differ from the last one:
such items are file-managed and read-only through the API. A channel's secret is only
ever in these events encrypted (``enc:v1:…``).
"""

from __future__ import annotations

from pydantic import Field

from shared.config import ChannelConfig, RuleConfig
from shared.events.base import Event


class RuleCreated(Event):
    """A rule was created through the API; the evaluator applies it to the next sample."""

    rule: RuleConfig
    by: str = Field(description="The authenticated identity that made the change")


class RuleUpdated(Event):
    """A rule created through the API was changed."""

    rule: RuleConfig
    by: str


class RuleDeleted(Event):
    """A rule created through the API was deleted (or the configuration file took its name)."""

    name: str
    by: str


class RulesProvisioned(Event):
    """The rules of the configuration file, as the alerts service loaded them at start."""

    file: str = Field(default="", description="The file's path; empty for the built-in rules")
    rules: list[RuleConfig]


class ChannelCreated(Event):
    """A channel was created through the API; its secret is encrypted (``enc:v1:…``)."""

    channel: ChannelConfig
    by: str


class ChannelUpdated(Event):
    """A channel created through the API was changed, or its secret encrypted again."""

    channel: ChannelConfig
    by: str


class ChannelDeleted(Event):
    """A channel created through the API was deleted (or the configuration file took its name)."""

    name: str
    by: str


class ChannelsProvisioned(Event):
    """The channels of the configuration file, secrets encrypted, as the notifier loaded them."""

    file: str = Field(default="", description="The file's path; empty when there is none")
    channels: list[ChannelConfig]


RULE_EVENTS = (RuleCreated, RuleUpdated, RuleDeleted)
CHANNEL_EVENTS = (ChannelCreated, ChannelUpdated, ChannelDeleted)
