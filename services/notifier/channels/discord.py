"""Discord channel: a webhook taking one embed per notification.

Mentions are switched off (``allowed_mentions.parse = []``): a label or a template
containing ``@everyone`` must not ping a whole server. Discord's limits are kept by
cutting the text, never by a refused page.
"""

from __future__ import annotations

from typing import Any

import aiohttp

from services.notifier.channels.http import RetryAfter, parse_retry_after, raise_for_status
from services.notifier.channels.posting import Answer, post_json
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
from shared.channelconfig import ChannelBase, DiscordChannel
from shared.errors import PermanentDeliveryError

COLORS = {
    "critical": 0xE01E5A,
    "error": 0xE01E5A,
    "warning": 0xECB22E,
    "info": 0x36C5F0,
    "acknowledged": 0x9E9EA6,
    "resolved": 0x2EB67D,
}
MAX_TITLE = 256
MAX_DESCRIPTION = 4096
MAX_FIELDS = 25
MAX_FIELD_NAME = 256
MAX_FIELD_VALUE = 1024
MAX_EMBED_TOTAL = 6000
DESCRIPTION_SHARE = 2500
MIN_FIELD_VALUE = 16
MAX_RETRY_AFTER_S = 3600.0


def color_for(payload: dict[str, Any]) -> int:
    return COLORS.get(status_of(payload)) or COLORS.get(severity_of(payload), COLORS["info"])


def embed_for(channel: ChannelBase, notification: Notification) -> dict[str, Any]:
    """One embed within Discord's limits; of the 6000 characters an embed may hold, the
    description keeps up to ``DESCRIPTION_SHARE`` and the fields share what is left."""
    payload = notification.payload
    title = clip(title_for(channel, notification), MAX_TITLE)
    footer = f"Vigil · {payload.get('event', '')}"
    links = f"[Open in Vigil]({dashboard_url(payload)})"
    if runbook := runbook_url(payload):
        links += f" · [Runbook]({runbook})"
    tail = clip("\n\n".join(["\n".join(digest_lines(notification)), links]).strip(), 2000)
    text = text_for(channel, notification)
    budget = MAX_EMBED_TOTAL - len(title) - len(footer)
    left = budget - min(len(text) + 2 + len(tail), DESCRIPTION_SHARE)
    fields: list[dict[str, Any]] = []
    pairs = fields_of(payload)[:MAX_FIELDS]
    for index, (name, value) in enumerate(pairs):
        shown_name = clip(name, MAX_FIELD_NAME) or "-"
        fair_share = left // (len(pairs) - index)  # long values do not crowd out the rest
        room = min(MAX_FIELD_VALUE, fair_share - len(shown_name))
        if room < MIN_FIELD_VALUE:
            break
        shown_value = clip(value, room) or "-"
        fields.append({"name": shown_name, "value": shown_value, "inline": True})
        left -= len(shown_name) + len(shown_value)
    used = sum(len(f["name"]) + len(f["value"]) for f in fields)
    room = min(MAX_DESCRIPTION, budget - used) - len(tail) - 2
    description = clip(f"{clip(text, max(room, 1))}\n\n{tail}", min(MAX_DESCRIPTION, budget - used))
    embed: dict[str, Any] = {
        "title": title,
        "description": description,
        "url": dashboard_url(payload),
        "color": color_for(payload),
        "fields": fields,
        "footer": {"text": footer},
    }
    if payload.get("time"):
        embed["timestamp"] = payload["time"]
    return embed


def message_for(channel: ChannelBase, notification: Notification) -> dict[str, Any]:
    return {"embeds": [embed_for(channel, notification)], "allowed_mentions": {"parse": []}}


def retry_after_of(answer: Answer) -> float | None:
    """Discord's JSON ``retry_after`` (fractional seconds), else the Retry-After header."""
    body = answer.json()
    if isinstance(body, dict):
        value = body.get("retry_after")
        if isinstance(value, int | float) and value >= 0:
            return min(float(value), MAX_RETRY_AFTER_S)
    return parse_retry_after(answer.retry_after)


async def deliver(
    session: aiohttp.ClientSession, channel: ChannelBase, notification: Notification
) -> Receipt:
    if not isinstance(channel, DiscordChannel):
        raise PermanentDeliveryError(f"channel {channel.name} is not a Discord channel")
    answer = await post_json(
        session, channel.url, message_for(channel, notification), timeout_s=channel.timeout_s
    )
    if answer.status == 429:
        wait = retry_after_of(answer)
        if wait is not None:
            raise RetryAfter(f"HTTP 429 Too Many Requests; retry after {wait:g}s", wait)
    raise_for_status(answer.status, answer.retry_after)
    return Receipt(status_code=answer.status, latency_ms=answer.latency_ms)
