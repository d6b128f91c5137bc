"""Channel transports by config type. A new type is a module with ``deliver`` plus one line here."""

from __future__ import annotations

from services.notifier.channels import (
    apprise_channel,
    datadog,
    discord,
    email,
    pagerduty,
    slack,
    teams,
    webhook,
)
from services.notifier.channels.transport import Receipt, Transport

TRANSPORTS: dict[str, Transport] = {
    "webhook": webhook.deliver,
    "slack": slack.deliver,
    "pagerduty": pagerduty.deliver,
    "teams": teams.deliver,
    "discord": discord.deliver,
    "email": email.deliver,
    "apprise": apprise_channel.deliver,
    "datadog": datadog.deliver,
}


def transport_for(channel_type: str) -> Transport:
    try:
        return TRANSPORTS[channel_type]
    except KeyError:
        raise ValueError(f"no transport for channel type {channel_type!r}") from None


__all__ = ["TRANSPORTS", "Receipt", "Transport", "transport_for"]
