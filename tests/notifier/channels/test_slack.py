"""The Slack transport against a Slack stand-in that checks Block Kit and the Web API."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from services.notifier.channels import TRANSPORTS
from services.notifier.channels.http import RetryAfter
from services.notifier.channels.slack import deliver, message_for
from shared.channelconfig import SlackChannel
from shared.errors import PermanentDeliveryError, TransientDeliveryError
from shared.outbound import OutboundGuard, OutboundPolicy
from tests.notifier.channels.samples import (
    ACKNOWLEDGED,
    ESCALATED,
    FIRED,
    INCIDENT,
    RESOLVED,
    RUNBOOK,
    with_digest,
    with_labels,
)
from tests.receivers.slack import (
    TEST_CHANNEL,
    TEST_TOKEN,
    SlackReceiver,
    dump,
    message_problems,
)


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with OutboundGuard(OutboundPolicy()).session() as client:
        yield client


@pytest.fixture
async def slack() -> AsyncIterator[SlackReceiver]:
    async with SlackReceiver() as receiver:
        yield receiver


def webhook(url: str, **extra: Any) -> SlackChannel:
    return SlackChannel.model_validate({"name": "ops", "type": "slack", "url": url, **extra})


def bot(slack: SlackReceiver, token: str = TEST_TOKEN, **extra: Any) -> SlackChannel:
    return SlackChannel.model_validate(
        {
            "name": "ops",
            "type": "slack",
            "token": token,
            "channel": TEST_CHANNEL,
            "api_url": slack.api_url,
            **extra,
        }
    )


def blocks_of(message: dict[str, Any]) -> list[dict[str, Any]]:
    [attachment] = message["attachments"]
    blocks: list[dict[str, Any]] = attachment["blocks"]
    return blocks


def buttons_of(message: dict[str, Any]) -> dict[str, str]:
    [actions] = [b for b in blocks_of(message) if b["type"] == "actions"]
    return {e["text"]["text"]: e["url"] for e in actions["elements"]}


# --- incoming webhook -------------------------------------------------------------


async def test_webhook_posts_coloured_block_kit_with_labels_value_and_links(
    session: aiohttp.ClientSession, slack: SlackReceiver
) -> None:
    assert TRANSPORTS["slack"] is deliver
    receipt = await deliver(session, webhook(slack.url), FIRED)
    assert receipt.status_code == 200
    assert receipt.thread is None
    assert slack.rejected == []
    [message] = slack.webhook_messages
    assert message["attachments"][0]["color"] == "#E01E5A"
    blocks = blocks_of(message)
    assert blocks[0] == {
        "type": "header",
        "text": {"type": "plain_text", "text": "[CRITICAL] cpu-high firing", "emoji": True},
    }
    assert "CPU pegged" in blocks[1]["text"]["text"]
    fields = [f["text"] for f in blocks[2]["fields"]]
    assert "*Value*\ncpu = 97.5" in fields
    assert "*Threshold*\n90" in fields
    assert "*host*\ndb-1" in fields
    assert buttons_of(message) == {
        "Open in Vigil": "http://localhost:8080/monitoring#/alerts/alert-7",
        "Runbook": RUNBOOK,
    }
    assert message["text"].startswith("CRITICAL cpu-high firing")


async def test_colours_follow_severity_and_outcome(
    session: aiohttp.ClientSession, slack: SlackReceiver
) -> None:
    for note in (FIRED, ESCALATED, RESOLVED, INCIDENT):
        await deliver(session, webhook(slack.url), note)
    colours = [m["attachments"][0]["color"] for m in slack.webhook_messages]
    assert colours == ["#E01E5A", "#E01E5A", "#2EB67D", "#36C5F0"]
    assert slack.rejected == []
    # an incident has no runbook: the only button opens it in Vigil
    assert list(buttons_of(slack.webhook_messages[-1])) == ["Open in Vigil"]


async def test_a_storm_fits_slacks_limits_as_one_message_with_a_digest(
    session: aiohttp.ClientSession, slack: SlackReceiver
) -> None:
    long = dataclasses.replace(
        with_labels(with_digest(FIRED, 120), 64, value="x" * 3000),
        payload={**with_labels(FIRED, 64, "x" * 3000).payload, "summary": "s" * 50_000},
    )
    await deliver(session, webhook(slack.url), long)
    assert slack.rejected == []
    [message] = slack.webhook_messages
    text = dump(message)
    assert "120 more alerts for cpu-high" in text
    assert "… and 115 more" in text
    assert "57 more labels" in text


async def test_labels_cannot_mention_the_channel_or_forge_links(
    session: aiohttp.ClientSession, slack: SlackReceiver
) -> None:
    note = with_labels(FIRED, 1, value="<!channel> <https://evil.example|click>")
    await deliver(session, webhook(slack.url), note)
    text = dump(slack.webhook_messages[0])
    assert "<!channel>" not in text
    assert "&lt;!channel&gt;" in text


def test_the_stand_in_refuses_what_slack_refuses() -> None:
    good = message_for(webhook("https://hooks.slack.com/x"), FIRED)
    assert message_problems(good) == []
    header = {"type": "header", "text": {"type": "plain_text", "text": "h" * 151}}
    assert message_problems({"blocks": [header]}) == [
        "blocks[0].text.text is 151 characters, more than 150"
    ]
    divider = {"type": "divider"}
    assert "more than 50" in message_problems({"blocks": [divider] * 51})[0]
    assert message_problems({"blocks": [{"type": "table"}]})
    assert message_problems({"blocks": [{"type": "section"}]}) == ["blocks[0] needs text or fields"]
    mrkdwn_header = {"type": "header", "text": {"type": "mrkdwn", "text": "h"}}
    assert message_problems({"blocks": [mrkdwn_header]})
    link = {"type": "button", "text": {"type": "plain_text", "text": "b" * 76}, "url": "x"}
    assert len(message_problems({"blocks": [{"type": "actions", "elements": [link]}]})) == 2
    assert message_problems({"attachments": [{"color": "red", "blocks": [divider]}]})
    assert message_problems({}) == ["no_text: a message needs text, blocks or attachments"]


@pytest.mark.parametrize(
    ("status", "retry_after", "error", "message"),
    [
        (429, 3, RetryAfter, "HTTP 429 Too Many Requests; retry after 3s"),
        (500, None, TransientDeliveryError, "HTTP 500 Internal Server Error"),
        (400, None, PermanentDeliveryError, "HTTP 400 Bad Request"),
        (404, None, PermanentDeliveryError, "HTTP 404 Not Found"),
    ],
)
async def test_webhook_failures(
    session: aiohttp.ClientSession,
    slack: SlackReceiver,
    status: int,
    retry_after: float | None,
    error: type[Exception],
    message: str,
) -> None:
    slack.fail_next(status, retry_after=retry_after)
    with pytest.raises(error) as raised:
        await deliver(session, webhook(slack.url), FIRED)
    assert str(raised.value) == message
    if retry_after is not None:
        assert isinstance(raised.value, RetryAfter)
        assert raised.value.retry_after_s == retry_after
    await deliver(session, webhook(slack.url), FIRED)  # the next one goes through
    assert len(slack.webhook_messages) == 1


async def test_a_slow_webhook_is_a_transient_timeout(
    session: aiohttp.ClientSession, slack: SlackReceiver
) -> None:
    slack.delay_s = 1.0
    with pytest.raises(TransientDeliveryError, match=r"timed out after 0\.2s"):
        await deliver(session, webhook(slack.url, timeout=0.2), FIRED)


# --- bot token -----------------------------------------------------------------------


async def test_bot_posts_then_updates_the_same_message_and_replies_in_its_thread(
    session: aiohttp.ClientSession, slack: SlackReceiver
) -> None:
    channel = bot(slack)
    first = await deliver(session, channel, FIRED)
    [posted] = slack.messages
    assert first.thread == f"{TEST_CHANNEL}:{posted.ts}"
    assert slack.received[0].headers["Authorization"] == f"Bearer {TEST_TOKEN}"
    assert posted.body["attachments"][0]["color"] == "#E01E5A"

    # a follow-up that changes nothing: a full message in the thread, the original untouched
    escalated = await deliver(session, channel, dataclasses.replace(ESCALATED, thread=first.thread))
    assert escalated.thread == first.thread
    [reply] = slack.thread(TEST_CHANNEL, posted.ts)
    assert "escalated" in reply.body["attachments"][0]["blocks"][0]["text"]["text"]
    assert posted.versions == []

    acked = await deliver(session, channel, dataclasses.replace(ACKNOWLEDGED, thread=first.thread))
    assert acked.thread == first.thread
    assert len(posted.versions) == 1  # updated in place: same channel, same ts
    assert posted.body["attachments"][0]["color"] == "#9E9EA6"
    assert "[ACKNOWLEDGED] cpu-high" in dump(posted.body)

    await deliver(session, channel, dataclasses.replace(RESOLVED, thread=first.thread))
    assert len(posted.versions) == 2
    assert posted.body["attachments"][0]["color"] == "#2EB67D"
    assert "[RESOLVED] cpu-high" in dump(posted.body)
    replies = slack.thread(TEST_CHANNEL, posted.ts)
    assert len(replies) == 3
    assert replies[1].body == {
        "channel": TEST_CHANNEL,
        "thread_ts": posted.ts,
        "text": ACKNOWLEDGED.payload["summary"],
    }
    assert replies[2].body["text"].startswith("RESOLVED cpu-high recovered")
    assert len(slack.top_level) == 1
    assert slack.rejected == []


async def test_a_users_slack_id_replaces_the_channel(
    session: aiohttp.ClientSession, slack: SlackReceiver
) -> None:
    receipt = await deliver(session, bot(slack), dataclasses.replace(FIRED, recipient="U0ANA"))
    [posted] = slack.messages
    assert posted.channel == "D0ANA"  # Slack answers with the DM's id
    assert receipt.thread == f"D0ANA:{posted.ts}"


async def test_an_update_of_a_vanished_message_still_replies(
    session: aiohttp.ClientSession, slack: SlackReceiver
) -> None:
    first = await deliver(session, bot(slack), FIRED)
    slack.fail_next(200, error="message_not_found")
    await deliver(session, bot(slack), dataclasses.replace(RESOLVED, thread=first.thread))
    [reply] = slack.thread(*first.thread.split(":"))  # type: ignore[union-attr]
    assert reply.body["text"].startswith("RESOLVED")


@pytest.mark.parametrize(
    ("status", "code", "retry_after", "error", "message"),
    [
        (200, "invalid_auth", None, PermanentDeliveryError, "Slack chat.postMessage: invalid_auth"),
        (
            200,
            "channel_not_found",
            None,
            PermanentDeliveryError,
            "Slack chat.postMessage: channel_not_found",
        ),
        (200, "ratelimited", None, TransientDeliveryError, "Slack chat.postMessage: ratelimited"),
        (
            200,
            "internal_error",
            None,
            TransientDeliveryError,
            "Slack chat.postMessage: internal_error",
        ),
        (200, "<script>", None, PermanentDeliveryError, "Slack chat.postMessage: unknown_error"),
        (429, "ratelimited", 7, RetryAfter, "HTTP 429 Too Many Requests; retry after 7s"),
        (503, None, None, TransientDeliveryError, "HTTP 503 Service Unavailable"),
    ],
)
async def test_bot_errors(
    session: aiohttp.ClientSession,
    slack: SlackReceiver,
    status: int,
    code: str | None,
    retry_after: float | None,
    error: type[Exception],
    message: str,
) -> None:
    slack.fail_next(status, retry_after=retry_after, error=code)
    with pytest.raises(error) as raised:
        await deliver(session, bot(slack), FIRED)
    assert str(raised.value) == message
    if retry_after is not None:
        assert isinstance(raised.value, RetryAfter)
        assert raised.value.retry_after_s == retry_after


async def test_bot_with_a_wrong_token_or_channel_is_refused_for_good(
    session: aiohttp.ClientSession, slack: SlackReceiver
) -> None:
    with pytest.raises(PermanentDeliveryError, match="invalid_auth"):
        await deliver(session, bot(slack, token="xoxb-wrong"), FIRED)
    with pytest.raises(PermanentDeliveryError, match="channel_not_found"):
        await deliver(session, bot(slack, channel="C0NOWHERE"), FIRED)
    assert slack.messages == []


async def test_a_slow_bot_call_is_a_transient_timeout(
    session: aiohttp.ClientSession, slack: SlackReceiver
) -> None:
    slack.delay_s = 1.0
    with pytest.raises(TransientDeliveryError, match=r"timed out after 0\.2s"):
        await deliver(session, bot(slack, timeout=0.2), FIRED)
