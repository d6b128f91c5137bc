"""Microsoft Teams channel: an incoming webhook (or a Workflows "post to a channel when
a webhook request is received" URL) taking a message with one Adaptive Card.

The card is version 1.4, the newest every Teams client renders; its container's style
carries the severity (attention, warning) or the outcome (good when resolved).
"""

from __future__ import annotations

from typing import Any

import aiohttp

from services.notifier.channels.http import raise_for_status
from services.notifier.channels.posting import post_json
from services.notifier.channels.transport import Receipt
from services.notifier.domain import Notification
from services.notifier.templates import (
    clip,
    dashboard_url,
    digest_lines,
    fields_of,
    runbook_url,
    severity_of,
    status_of,
    text_for,
    title_for,
)
from shared.channelconfig import ChannelBase, TeamsChannel
from shared.errors import PermanentDeliveryError, TransientDeliveryError

CARD_SCHEMA = "http://adaptivecards.io/schemas/adaptive-card.json"
CARD_CONTENT_TYPE = "application/vnd.microsoft.card.adaptive"
STYLES = {
    "critical": "attention",
    "error": "attention",
    "warning": "warning",
    "info": "accent",
    "acknowledged": "emphasis",
    "resolved": "good",
}
MAX_FACTS = 20
MAX_TEXT = 4000


def style_for(payload: dict[str, Any]) -> str:
    return STYLES.get(status_of(payload)) or STYLES.get(severity_of(payload), "accent")


def card_for(channel: ChannelBase, notification: Notification) -> dict[str, Any]:
    payload = notification.payload
    body: list[dict[str, Any]] = [
        {
            "type": "Container",
            "style": style_for(payload),
            "bleed": True,
            "items": [
                {
                    "type": "TextBlock",
                    "text": clip(title_for(channel, notification), 300),
                    "size": "large",
                    "weight": "bolder",
                    "wrap": True,
                },
                {
                    "type": "TextBlock",
                    "text": clip(text_for(channel, notification), MAX_TEXT),
                    "wrap": True,
                },
            ],
        }
    ]
    facts = [
        {"title": clip(name, 100), "value": clip(value, 500)}
        for name, value in fields_of(payload)[:MAX_FACTS]
    ]
    if facts:
        body.append({"type": "FactSet", "facts": facts})
    digest = digest_lines(notification)
    if digest:
        body.append(
            {
                "type": "Container",
                "separator": True,
                "items": [{"type": "TextBlock", "text": line, "wrap": True} for line in digest],
            }
        )
    body.append(
        {
            "type": "TextBlock",
            "text": f"{payload.get('event', '')} · {payload.get('time', '')}",
            "isSubtle": True,
            "size": "small",
            "wrap": True,
        }
    )
    actions = [{"type": "Action.OpenUrl", "title": "Open in Vigil", "url": dashboard_url(payload)}]
    if runbook := runbook_url(payload):
        actions.append({"type": "Action.OpenUrl", "title": "Runbook", "url": runbook})
    return {
        "$schema": CARD_SCHEMA,
        "type": "AdaptiveCard",
        "version": "1.4",
        "body": body,
        "actions": actions,
        "msteams": {"width": "Full"},
    }


def message_for(channel: ChannelBase, notification: Notification) -> dict[str, Any]:
    return {
        "type": "message",
        "attachments": [
            {
                "contentType": CARD_CONTENT_TYPE,
                "contentUrl": None,
                "content": card_for(channel, notification),
            }
        ],
    }


async def deliver(
    session: aiohttp.ClientSession, channel: ChannelBase, notification: Notification
) -> Receipt:
    if not isinstance(channel, TeamsChannel):
        raise PermanentDeliveryError(f"channel {channel.name} is not a Teams channel")
    answer = await post_json(
        session, channel.url, message_for(channel, notification), timeout_s=channel.timeout_s
    )
    raise_for_status(answer.status, answer.retry_after)
    # The old Office 365 connector reported throttling as HTTP 200 with the error as text.
    if b"HTTP error 429" in answer.body[:512]:
        raise TransientDeliveryError("Teams: rate limited (HTTP error 429 in a 200 answer)")
    return Receipt(status_code=answer.status, latency_ms=answer.latency_ms)
