"""Channels from environment variables: ``SLACK_WEBHOOK_URL``, ``PAGERDUTY_API_KEY``,
``ALERT_EMAIL_SMTP_HOST`` and ``DATADOG_API_KEY`` each create one channel.

The quickest way to be paged is one variable in a compose file, so these channels need
nothing else: they receive every alert and incident event. A variable that is set but
wrong stops the start with an error naming it -- a page that silently goes nowhere is
the failure a monitoring system must not have. An empty variable counts as unset.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from pydantic import ValidationError

from shared.channelconfig import (
    ChannelBase,
    DatadogChannel,
    EmailChannel,
    PagerDutyChannel,
    SlackChannel,
)

EMAIL_PORTS = {"starttls": 587, "ssl": 465, "none": 25}
EMAIL_VARIABLES = (
    "ALERT_EMAIL_SMTP_PORT",
    "ALERT_EMAIL_SMTP_TLS",
    "ALERT_EMAIL_USERNAME",
    "ALERT_EMAIL_PASSWORD",
    "ALERT_EMAIL_FROM",
    "ALERT_EMAIL_TO",
    "ALERT_EMAIL_CA_FILE",
)


class EnvChannelError(ValueError):
    """A channel variable with a value that cannot work; ``variable`` names it."""

    def __init__(self, variable: str, problem: str):
        super().__init__(f"{variable}: {problem}")
        self.variable = variable


def _get(environ: Mapping[str, str], name: str) -> str:
    return (environ.get(name) or "").strip()


def _build(
    kind: type[ChannelBase], fields: dict[str, Any], variables: Mapping[str, str]
) -> ChannelBase:
    """The channel, or an error naming the variable behind the first bad field (never
    its value: most of these are credentials)."""
    try:
        return kind.model_validate(fields)
    except ValidationError as exc:
        error = exc.errors()[0]
        field = str(error["loc"][0]) if error["loc"] else ""
        variable = variables.get(field, next(iter(variables.values())))
        raise EnvChannelError(variable, error["msg"]) from None


def _requires(environ: Mapping[str, str], needed: str, *dependents: str) -> None:
    if _get(environ, needed):
        return
    for name in dependents:
        if _get(environ, name):
            raise EnvChannelError(needed, f"is required when {name} is set")


def slack(environ: Mapping[str, str]) -> ChannelBase | None:
    url = _get(environ, "SLACK_WEBHOOK_URL")
    if not url:
        return None
    if not url.startswith(("https://", "http://")):
        raise EnvChannelError("SLACK_WEBHOOK_URL", "must be an http(s) URL")
    return _build(
        SlackChannel,
        {"name": "env-slack", "type": "slack", "url": url},
        {"url": "SLACK_WEBHOOK_URL"},
    )


def pagerduty(environ: Mapping[str, str]) -> ChannelBase | None:
    _requires(environ, "PAGERDUTY_API_KEY", "PAGERDUTY_EVENTS_URL")
    key = _get(environ, "PAGERDUTY_API_KEY")
    if not key:
        return None
    fields: dict[str, Any] = {"name": "env-pagerduty", "type": "pagerduty", "routing_key": key}
    if events_url := _get(environ, "PAGERDUTY_EVENTS_URL"):
        fields["events_url"] = events_url
    return _build(
        PagerDutyChannel,
        fields,
        {"routing_key": "PAGERDUTY_API_KEY", "events_url": "PAGERDUTY_EVENTS_URL"},
    )


def email(environ: Mapping[str, str]) -> ChannelBase | None:
    _requires(environ, "ALERT_EMAIL_SMTP_HOST", *EMAIL_VARIABLES)
    host = _get(environ, "ALERT_EMAIL_SMTP_HOST")
    if not host:
        return None
    tls = _get(environ, "ALERT_EMAIL_SMTP_TLS").lower() or "starttls"
    if tls not in EMAIL_PORTS:
        raise EnvChannelError("ALERT_EMAIL_SMTP_TLS", f"must be one of {', '.join(EMAIL_PORTS)}")
    port_text = _get(environ, "ALERT_EMAIL_SMTP_PORT")
    if port_text and not port_text.isdigit():
        raise EnvChannelError("ALERT_EMAIL_SMTP_PORT", "must be a port number")
    to = [address.strip() for address in _get(environ, "ALERT_EMAIL_TO").split(",")]
    to = [address for address in to if address]
    if not to:
        raise EnvChannelError("ALERT_EMAIL_TO", "is required: comma-separated addresses")
    username = _get(environ, "ALERT_EMAIL_USERNAME")
    sender = _get(environ, "ALERT_EMAIL_FROM") or (username if "@" in username else "")
    if not sender:
        raise EnvChannelError("ALERT_EMAIL_FROM", "is required (the sender address)")
    fields: dict[str, Any] = {
        "name": "env-email",
        "type": "email",
        "host": host,
        "port": int(port_text) if port_text else EMAIL_PORTS[tls],
        "tls": tls,
        "username": username,
        "password": environ.get("ALERT_EMAIL_PASSWORD") or "",  # spaces may be meant
        "from": sender,
        "to": to,
        "ca_file": _get(environ, "ALERT_EMAIL_CA_FILE"),
    }
    if fields["password"] and not username:
        raise EnvChannelError("ALERT_EMAIL_USERNAME", "is required with ALERT_EMAIL_PASSWORD")
    return _build(
        EmailChannel,
        fields,
        {
            "host": "ALERT_EMAIL_SMTP_HOST",
            "port": "ALERT_EMAIL_SMTP_PORT",
            "tls": "ALERT_EMAIL_SMTP_TLS",
            "username": "ALERT_EMAIL_USERNAME",
            "password": "ALERT_EMAIL_PASSWORD",
            "from": "ALERT_EMAIL_FROM",
            "to": "ALERT_EMAIL_TO",
            "ca_file": "ALERT_EMAIL_CA_FILE",
        },
    )


def datadog(environ: Mapping[str, str]) -> ChannelBase | None:
    _requires(environ, "DATADOG_API_KEY", "DATADOG_APP_KEY", "DATADOG_API_URL")
    key = _get(environ, "DATADOG_API_KEY")
    if not key:
        return None
    fields: dict[str, Any] = {
        "name": "env-datadog",
        "type": "datadog",
        "api_key": key,
        "app_key": _get(environ, "DATADOG_APP_KEY"),
    }
    if api_url := _get(environ, "DATADOG_API_URL"):
        fields["api_url"] = api_url
    return _build(
        DatadogChannel,
        fields,
        {
            "api_key": "DATADOG_API_KEY",
            "app_key": "DATADOG_APP_KEY",
            "api_url": "DATADOG_API_URL",
        },
    )


BUILDERS: tuple[Callable[[Mapping[str, str]], ChannelBase | None], ...] = (
    slack,
    pagerduty,
    email,
    datadog,
)


def channels_from_env(environ: Mapping[str, str]) -> list[ChannelBase]:
    """The channels the environment asks for, in a fixed order; raises EnvChannelError
    naming the first variable that is wrong."""
    return [channel for build in BUILDERS if (channel := build(environ)) is not None]
