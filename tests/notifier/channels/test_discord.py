"""The Discord transport against a Discord stand-in that checks the embed limits."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from services.notifier.channels import TRANSPORTS
from services.notifier.channels.discord import deliver, message_for
from services.notifier.channels.http import RetryAfter
from shared.channelconfig import DiscordChannel, MessageTemplate
from shared.errors import PermanentDeliveryError, TransientDeliveryError
from shared.outbound import OutboundGuard, OutboundPolicy
from tests.notifier.channels.samples import (
    FIRED,
    RESOLVED,
    RUNBOOK,
    with_digest,
    with_labels,
)
from tests.receivers.discord import DiscordReceiver, embed_problems, webhook_problems


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with OutboundGuard(OutboundPolicy()).session() as client:
        yield client


@pytest.fixture
async def discord() -> AsyncIterator[DiscordReceiver]:
    async with DiscordReceiver() as receiver:
        yield receiver


def channel(url: str, **extra: Any) -> DiscordChannel:
    return DiscordChannel.model_validate({"name": "ops", "type": "discord", "url": url} | extra)


async def test_an_alert_is_one_embed_without_mentions(
    session: aiohttp.ClientSession, discord: DiscordReceiver
) -> None:
    assert TRANSPORTS["discord"] is deliver
    receipt = await deliver(session, channel(discord.url), FIRED)
    assert receipt.status_code == 204
    assert discord.rejected == []
    [message] = discord.messages
    assert message["allowed_mentions"] == {"parse": []}
    [embed] = message["embeds"]
    assert embed["title"] == "[CRITICAL] cpu-high firing"
    assert embed["color"] == 0xE01E5A
    assert embed["url"] == "http://localhost:8080/monitoring#/alerts/alert-7"
    assert embed["timestamp"] == "2026-11-30T03:04:05+00:00"
    assert f"[Runbook]({RUNBOOK})" in embed["description"]
    assert {"name": "host", "value": "db-1", "inline": True} in embed["fields"]
    await deliver(session, channel(discord.url), RESOLVED)
    assert discord.messages[1]["embeds"][0]["color"] == 0x2EB67D


async def test_huge_alerts_are_cut_to_discords_limits(
    session: aiohttp.ClientSession, discord: DiscordReceiver
) -> None:
    huge = with_digest(with_labels(FIRED, 40, value="v" * 2000), 50)
    long_title = MessageTemplate(title="{{ 't' * 400 }}", text="{{ 'd' * 9000 }}")
    await deliver(session, channel(discord.url, template=long_title), huge)
    assert discord.rejected == []
    [embed] = discord.messages[0]["embeds"]
    assert len(embed["title"]) == 256
    assert len(embed["fields"]) == 25
    assert all(len(f["value"]) <= 1024 for f in embed["fields"])
    assert len(embed["description"]) <= 4096
    assert embed_problems(embed, "embed")[1] <= 6000
    assert "50 more alerts for cpu-high" in embed["description"]


def test_the_stand_in_refuses_what_discord_refuses() -> None:
    good = message_for(channel("https://discord.com/api/webhooks/1/x"), FIRED)
    assert webhook_problems(good) == []
    embed = good["embeds"][0]
    assert webhook_problems({**good, "embeds": [{**embed, "title": "t" * 257}]})
    assert webhook_problems({**good, "embeds": [{**embed, "color": "#ff0000"}]})
    assert webhook_problems({**good, "embeds": [{**embed, "fields": [{"name": "", "value": "v"}]}]})
    assert webhook_problems({**good, "embeds": [{**embed, "description": "d" * 4000}] * 2})
    assert webhook_problems({"embeds": []}) == ["Cannot send an empty message"]
    assert webhook_problems({**good, "allowed_mentions": {"parse": ["channels"]}})


async def test_rate_limited_waits_discords_fractional_retry_after(
    session: aiohttp.ClientSession, discord: DiscordReceiver
) -> None:
    discord.fail_next(429, retry_after=1.5)  # the header says 2, the body 1.5
    with pytest.raises(RetryAfter) as raised:
        await deliver(session, channel(discord.url), FIRED)
    assert raised.value.retry_after_s == 1.5
    assert discord.received[0].headers  # and it did reach the receiver
    await deliver(session, channel(discord.url), FIRED)
    assert len(discord.messages) == 1


@pytest.mark.parametrize(
    ("status", "error", "message"),
    [
        (500, TransientDeliveryError, "HTTP 500 Internal Server Error"),
        (400, PermanentDeliveryError, "HTTP 400 Bad Request"),
        (404, PermanentDeliveryError, "HTTP 404 Not Found"),
    ],
)
async def test_failures(
    session: aiohttp.ClientSession,
    discord: DiscordReceiver,
    status: int,
    error: type[Exception],
    message: str,
) -> None:
    discord.fail_next(status)
    with pytest.raises(error) as raised:
        await deliver(session, channel(discord.url), FIRED)
    assert str(raised.value) == message


async def test_an_unknown_webhook_is_permanent_and_slow_is_transient(
    session: aiohttp.ClientSession, discord: DiscordReceiver
) -> None:
    with pytest.raises(PermanentDeliveryError, match="HTTP 404"):
        await deliver(session, channel(discord.url + "-gone"), FIRED)
    discord.delay_s = 1.0
    with pytest.raises(TransientDeliveryError, match=r"timed out after 0\.2s"):
        await deliver(session, channel(discord.url, timeout=0.2), FIRED)
    assert dataclasses.replace(FIRED).digest == ()
