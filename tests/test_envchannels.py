"""The seed's environment variables, each making the channel it names."""

from __future__ import annotations

import pytest

from shared.channelconfig import (
    ALL_NOTIFIED_EVENTS,
    DatadogChannel,
    EmailChannel,
    PagerDutyChannel,
    SlackChannel,
)
from shared.envchannels import EnvChannelError, channels_from_env

EMAIL = {
    "ALERT_EMAIL_SMTP_HOST": "smtp.example.org",
    "ALERT_EMAIL_TO": "oncall@example.org, lead@example.org",
    "ALERT_EMAIL_FROM": "vigil@example.org",
}


def test_no_variables_no_channels() -> None:
    assert channels_from_env({}) == []
    assert channels_from_env({"SLACK_WEBHOOK_URL": " ", "PAGERDUTY_API_KEY": ""}) == []


def test_every_variable_makes_its_channel_receiving_every_event() -> None:
    channels = channels_from_env(
        {
            "SLACK_WEBHOOK_URL": "https://hooks.slack.com/services/T0/B0/x",
            "PAGERDUTY_API_KEY": "R0UTINGKEY",
            "PAGERDUTY_EVENTS_URL": "http://127.0.0.1:9999/v2/enqueue",
            **EMAIL,
            "ALERT_EMAIL_USERNAME": "vigil",
            "ALERT_EMAIL_PASSWORD": "pw",
            "DATADOG_API_KEY": "dd-key",
            "DATADOG_APP_KEY": "dd-app",
            "DATADOG_API_URL": "https://api.datadoghq.eu",
            "UNRELATED": "x",
        }
    )
    assert [c.name for c in channels] == ["env-slack", "env-pagerduty", "env-email", "env-datadog"]
    slack, pagerduty, email, datadog = channels
    assert isinstance(slack, SlackChannel) and slack.url.endswith("/T0/B0/x")
    assert isinstance(pagerduty, PagerDutyChannel)
    assert pagerduty.routing_key == "R0UTINGKEY"
    assert pagerduty.events_url == "http://127.0.0.1:9999/v2/enqueue"
    assert isinstance(email, EmailChannel)
    assert (email.host, email.port, email.tls) == ("smtp.example.org", 587, "starttls")
    assert (email.username, email.password) == ("vigil", "pw")
    assert email.from_address == "vigil@example.org"
    assert email.to == ["oncall@example.org", "lead@example.org"]
    assert isinstance(datadog, DatadogChannel)
    assert (datadog.api_key, datadog.app_key) == ("dd-key", "dd-app")
    assert datadog.api_url == "https://api.datadoghq.eu" and datadog.metrics == []
    for channel in channels:
        assert channel.events == list(ALL_NOTIFIED_EVENTS)


def test_defaults() -> None:
    [pagerduty, datadog] = channels_from_env({"PAGERDUTY_API_KEY": "k", "DATADOG_API_KEY": "d"})
    assert isinstance(pagerduty, PagerDutyChannel)
    assert pagerduty.events_url == "https://events.pagerduty.com/v2/enqueue"
    assert isinstance(datadog, DatadogChannel)
    assert datadog.api_url == "https://api.datadoghq.com" and datadog.app_key == ""


@pytest.mark.parametrize(("tls", "port"), [("starttls", 587), ("ssl", 465), ("none", 25)])
def test_the_email_port_follows_the_tls_mode(tls: str, port: int) -> None:
    [email] = channels_from_env({**EMAIL, "ALERT_EMAIL_SMTP_TLS": tls.upper()})
    assert isinstance(email, EmailChannel)
    assert (email.tls, email.port) == (tls, port)
    [email] = channels_from_env(
        {**EMAIL, "ALERT_EMAIL_SMTP_TLS": tls, "ALERT_EMAIL_SMTP_PORT": "2525"}
    )
    assert isinstance(email, EmailChannel) and email.port == 2525


def test_the_sender_defaults_to_a_username_that_is_an_address() -> None:
    env = {k: v for k, v in EMAIL.items() if k != "ALERT_EMAIL_FROM"}
    [email] = channels_from_env({**env, "ALERT_EMAIL_USERNAME": "alerts@example.org"})
    assert isinstance(email, EmailChannel) and email.from_address == "alerts@example.org"


@pytest.mark.parametrize(
    ("environ", "variable", "problem"),
    [
        ({**EMAIL, "ALERT_EMAIL_SMTP_TLS": "foo"}, "ALERT_EMAIL_SMTP_TLS", "one of starttls"),
        ({**EMAIL, "ALERT_EMAIL_SMTP_PORT": "smtp"}, "ALERT_EMAIL_SMTP_PORT", "port number"),
        ({**EMAIL, "ALERT_EMAIL_SMTP_PORT": "70000"}, "ALERT_EMAIL_SMTP_PORT", "65535"),
        ({**EMAIL, "ALERT_EMAIL_TO": " , "}, "ALERT_EMAIL_TO", "required"),
        ({**EMAIL, "ALERT_EMAIL_TO": "ops@example.org, nobody"}, "ALERT_EMAIL_TO", "'nobody'"),
        ({"ALERT_EMAIL_SMTP_HOST": "h", "ALERT_EMAIL_TO": "a@b.c"}, "ALERT_EMAIL_FROM", "sender"),
        ({"ALERT_EMAIL_TO": "a@b.c"}, "ALERT_EMAIL_SMTP_HOST", "when ALERT_EMAIL_TO is set"),
        ({**EMAIL, "ALERT_EMAIL_PASSWORD": "pw"}, "ALERT_EMAIL_USERNAME", "ALERT_EMAIL_PASSWORD"),
        ({"SLACK_WEBHOOK_URL": "hooks.slack.com/x"}, "SLACK_WEBHOOK_URL", r"http\(s\) URL"),
        ({"PAGERDUTY_EVENTS_URL": "http://x"}, "PAGERDUTY_API_KEY", "required"),
        (
            {"PAGERDUTY_API_KEY": "k", "PAGERDUTY_EVENTS_URL": "ftp://x"},
            "PAGERDUTY_EVENTS_URL",
            "should match",
        ),
        ({"DATADOG_APP_KEY": "a"}, "DATADOG_API_KEY", "when DATADOG_APP_KEY is set"),
        (
            {"DATADOG_API_KEY": "k", "DATADOG_API_URL": "api.datadoghq.com"},
            "DATADOG_API_URL",
            "should match",
        ),
    ],
)
def test_a_wrong_value_names_its_variable(
    environ: dict[str, str], variable: str, problem: str
) -> None:
    with pytest.raises(EnvChannelError, match=problem) as caught:
        channels_from_env(environ)
    assert caught.value.variable == variable
    assert str(caught.value).startswith(f"{variable}: ")


def test_a_credential_is_never_in_the_error() -> None:
    with pytest.raises(EnvChannelError) as caught:
        channels_from_env({"DATADOG_API_KEY": "k" * 600})  # longer than any real key
    assert caught.value.variable == "DATADOG_API_KEY"
    assert "kkkk" not in str(caught.value)
