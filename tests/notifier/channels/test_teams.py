"""The Teams transport against a Teams stand-in that checks the Adaptive Card message."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest

from services.notifier.channels import TRANSPORTS
from services.notifier.channels.http import RetryAfter
from services.notifier.channels.teams import deliver, message_for
from shared.channelconfig import TeamsChannel
from shared.errors import PermanentDeliveryError, TransientDeliveryError
from shared.outbound import OutboundGuard, OutboundPolicy
from tests.notifier.channels.samples import (
    ACKNOWLEDGED,
    FIRED,
    INCIDENT,
    RESOLVED,
    RUNBOOK,
    WARNING,
    with_digest,
    with_labels,
)
from tests.receivers.teams import TeamsReceiver, card_message_problems


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with OutboundGuard(OutboundPolicy()).session() as client:
        yield client


@pytest.fixture
async def teams() -> AsyncIterator[TeamsReceiver]:
    async with TeamsReceiver() as receiver:
        yield receiver


def channel(url: str, timeout: float = 10.0) -> TeamsChannel:
    return TeamsChannel(name="ops", type="teams", url=url, timeout=timeout)


async def test_an_alert_is_an_adaptive_card_with_facts_and_links(
    session: aiohttp.ClientSession, teams: TeamsReceiver
) -> None:
    assert TRANSPORTS["teams"] is deliver
    receipt = await deliver(session, channel(teams.url), FIRED)
    assert receipt.status_code == 200
    assert teams.rejected == []
    [card] = teams.cards
    assert card["version"] == "1.4"
    header = card["body"][0]
    assert header["style"] == "attention"
    assert header["items"][0]["text"] == "[CRITICAL] cpu-high firing"
    assert "CPU pegged" in header["items"][1]["text"]
    facts = {f["title"]: f["value"] for f in card["body"][1]["facts"]}
    assert facts["Value"] == "cpu = 97.5"
    assert facts["host"] == "db-1"
    assert "runbook_url" not in facts  # it is a button, not a fact
    assert card["actions"] == [
        {
            "type": "Action.OpenUrl",
            "title": "Open in Vigil",
            "url": "http://localhost:8080/monitoring#/alerts/alert-7",
        },
        {"type": "Action.OpenUrl", "title": "Runbook", "url": RUNBOOK},
    ]


async def test_styles_digest_and_many_labels_stay_valid(
    session: aiohttp.ClientSession, teams: TeamsReceiver
) -> None:
    for note in (WARNING, ACKNOWLEDGED, RESOLVED, INCIDENT):
        await deliver(session, channel(teams.url), note)
    await deliver(session, channel(teams.url), with_digest(with_labels(FIRED, 64), 30))
    assert teams.rejected == []
    styles = [card["body"][0]["style"] for card in teams.cards]
    assert styles == ["warning", "emphasis", "good", "accent", "attention"]
    digest = teams.cards[-1]["body"][2]["items"]
    assert digest[0]["text"] == "30 more alerts for cpu-high"
    assert digest[-1]["text"] == "… and 25 more"


def test_the_stand_in_refuses_what_teams_refuses() -> None:
    good = message_for(channel("https://example.webhook.office.com/x"), FIRED)
    assert card_message_problems(good, 1000) == []
    card = good["attachments"][0]["content"]

    def with_card(**changes: object) -> dict[str, object]:
        return {**good, "attachments": [{**good["attachments"][0], "content": {**card, **changes}}]}

    assert card_message_problems(with_card(version="2.0"), 1000)
    assert card_message_problems(with_card(body=[{"type": "Table"}]), 1000)
    assert card_message_problems(
        with_card(body=[{"type": "TextBlock", "text": "x", "size": "huge"}]), 1000
    )
    assert card_message_problems(with_card(actions=[{"type": "Action.Submit"}]), 1000)
    assert card_message_problems({**good, "type": "card"}, 1000)
    assert card_message_problems(good, 40_000) == ["the message is 40000 bytes, more than 28672"]


@pytest.mark.parametrize(
    ("status", "retry_after", "error", "message"),
    [
        (429, 5, RetryAfter, "HTTP 429 Too Many Requests; retry after 5s"),
        (500, None, TransientDeliveryError, "HTTP 500 Internal Server Error"),
        (400, None, PermanentDeliveryError, "HTTP 400 Bad Request"),
    ],
)
async def test_failures(
    session: aiohttp.ClientSession,
    teams: TeamsReceiver,
    status: int,
    retry_after: float | None,
    error: type[Exception],
    message: str,
) -> None:
    teams.fail_next(status, retry_after=retry_after)
    with pytest.raises(error) as raised:
        await deliver(session, channel(teams.url), FIRED)
    assert str(raised.value) == message
    assert isinstance(raised.value, RetryAfter) == (retry_after is not None)


async def test_throttling_reported_inside_a_200_is_transient(
    session: aiohttp.ClientSession, teams: TeamsReceiver
) -> None:
    teams.fail_next(
        200, error="Microsoft Teams endpoint returned HTTP error 429 with ContextId tcid=0"
    )
    with pytest.raises(TransientDeliveryError, match="rate limited"):
        await deliver(session, channel(teams.url), FIRED)
    assert (await deliver(session, channel(teams.url), FIRED)).status_code == 200


async def test_a_slow_answer_is_a_transient_timeout(
    session: aiohttp.ClientSession, teams: TeamsReceiver
) -> None:
    teams.delay_s = 1.0
    with pytest.raises(TransientDeliveryError, match=r"timed out after 0\.2s"):
        await deliver(session, channel(teams.url, timeout=0.2), FIRED)
