"""Slack channel: an incoming webhook, or a bot token that keeps one message per alert.

The message is Block Kit (header, text, fields, links as buttons) wrapped in a legacy
attachment, because an attachment's ``color`` bar is still Slack's only documented way
to colour a message by severity.

With a bot token the first notification of an alert posts a message with
``chat.postMessage`` and returns ``"<channel id>:<ts>"`` as the receipt's thread; later
notifications of the same alert come back with that thread: an acknowledgement or a
resolution rewrites the original message in place (``chat.update``: new colour and
status, so the channel's history shows the current state) and says so in its thread;
anything else is a reply in the thread. Slack answers the Web API with HTTP 200 and
``{"ok": false, "error": ...}``, so the error code decides transient or permanent.
"""

from __future__ import annotations

import re
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
from shared.channelconfig import ChannelBase, SlackChannel
from shared.errors import PermanentDeliveryError, TransientDeliveryError

COLORS = {
    "critical": "#E01E5A",
    "error": "#E01E5A",
    "warning": "#ECB22E",
    "info": "#36C5F0",
    "acknowledged": "#9E9EA6",
    "resolved": "#2EB67D",
}
MAX_FIELDS = 10  # a section's limit
# Slack errors a later attempt may get past; every other error code is permanent.
TRANSIENT_ERRORS = frozenset(
    {
        "ratelimited",
        "rate_limited",
        "internal_error",
        "fatal_error",
        "service_unavailable",
        "request_timeout",
        "team_added_to_org",
    }
)
# chat.update errors that mean the original message is gone or frozen: the thread reply
# still tells the story, so they do not fail the delivery.
UNUPDATABLE = frozenset({"message_not_found", "cant_update_message", "edit_window_closed"})
ERROR_CODE = re.compile(r"^[a-z0-9_]{1,64}$")


# --- the message ---------------------------------------------------------------------


def escape(text: str) -> str:
    """Slack mrkdwn control characters, so a label cannot ping ``<!channel>`` or forge a link."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def color_for(payload: dict[str, Any]) -> str:
    status = status_of(payload)
    return COLORS.get(status) or COLORS.get(severity_of(payload), COLORS["info"])


def blocks_for(channel: ChannelBase, notification: Notification) -> list[dict[str, Any]]:
    payload = notification.payload
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": plain(clip(title_for(channel, notification), 150))},
        {"type": "section", "text": mrkdwn(clip(escape(text_for(channel, notification)), 3000))},
    ]
    fields = fields_of(payload)
    if fields:
        shown = fields[:MAX_FIELDS]
        blocks.append(
            {
                "type": "section",
                "fields": [
                    mrkdwn(clip(f"*{escape(name)}*\n{escape(value)}", 2000))
                    for name, value in shown
                ],
            }
        )
        if len(fields) > MAX_FIELDS:
            blocks.append(
                {"type": "context", "elements": [mrkdwn(f"{len(fields) - MAX_FIELDS} more labels")]}
            )
    digest = digest_lines(notification)
    if digest:
        blocks.append({"type": "section", "text": mrkdwn(clip(escape("\n".join(digest)), 3000))})
    blocks.append(
        {
            "type": "context",
            "elements": [mrkdwn(escape(f"{payload.get('event', '')} · {payload.get('time', '')}"))],
        }
    )
    buttons = [button("Open in Vigil", dashboard_url(payload), "vigil-open")]
    runbook = runbook_url(payload)
    if runbook:
        buttons.append(button("Runbook", runbook, "vigil-runbook"))
    blocks.append({"type": "actions", "elements": buttons})
    return blocks


def message_for(channel: ChannelBase, notification: Notification) -> dict[str, Any]:
    """The message body both modes send: fallback text plus the coloured blocks."""
    return {
        "text": clip(escape(text_for(channel, notification)), 3000),
        "attachments": [
            {
                "color": color_for(notification.payload),
                "blocks": blocks_for(channel, notification),
            }
        ],
    }


def plain(text: str) -> dict[str, Any]:
    return {"type": "plain_text", "text": text or " ", "emoji": True}


def mrkdwn(text: str) -> dict[str, Any]:
    return {"type": "mrkdwn", "text": text or " "}


def button(text: str, url: str, action_id: str) -> dict[str, Any]:
    return {"type": "button", "text": plain(text), "url": clip(url, 3000), "action_id": action_id}


def closes(payload: dict[str, Any]) -> bool:
    """An acknowledgement or resolution: what rewrites the original message."""
    return status_of(payload) in ("acknowledged", "resolved")


def parse_thread(thread: str | None) -> tuple[str, str] | None:
    if not thread:
        return None
    channel, _, ts = thread.partition(":")
    if not channel or not ts:
        raise PermanentDeliveryError(f"Slack thread {thread!r} is not <channel id>:<ts>")
    return channel, ts


# --- sending ---------------------------------------------------------------------------


async def deliver(
    session: aiohttp.ClientSession, channel: ChannelBase, notification: Notification
) -> Receipt:
    if not isinstance(channel, SlackChannel):
        raise PermanentDeliveryError(f"channel {channel.name} is not a Slack channel")
    if channel.token:
        return await _deliver_as_bot(session, channel, notification)
    if not channel.url:
        raise PermanentDeliveryError(f"Slack channel {channel.name} has neither url nor token")
    answer = await post_json(
        session, channel.url, message_for(channel, notification), timeout_s=channel.timeout_s
    )
    raise_for_status(answer.status, answer.retry_after)
    return Receipt(status_code=answer.status, latency_ms=answer.latency_ms)


async def _deliver_as_bot(
    session: aiohttp.ClientSession, channel: SlackChannel, notification: Notification
) -> Receipt:
    message = message_for(channel, notification)
    thread = parse_thread(notification.thread)
    if thread is None:
        target = notification.recipient or channel.channel
        if not target:
            raise PermanentDeliveryError(
                f"Slack channel {channel.name} names no channel to post to"
            )
        answer, body = await call(
            session, channel, "chat.postMessage", {"channel": target, **message}
        )
        posted = f"{body.get('channel') or target}:{body.get('ts', '')}"
        return Receipt(status_code=answer.status, latency_ms=answer.latency_ms, thread=posted)
    where, ts = thread
    latency = 0.0
    if closes(notification.payload):
        try:
            answer, _ = await call(
                session, channel, "chat.update", {"channel": where, "ts": ts, **message}
            )
            latency += answer.latency_ms
        except SlackError as exc:
            if exc.slack_error not in UNUPDATABLE:
                raise
        reply: dict[str, Any] = {"text": message["text"]}
    else:
        reply = message
    answer, _ = await call(
        session, channel, "chat.postMessage", {"channel": where, "thread_ts": ts, **reply}
    )
    return Receipt(
        status_code=answer.status,
        latency_ms=latency + answer.latency_ms,
        thread=notification.thread,
    )


class SlackError(PermanentDeliveryError):
    """Slack refused the call for good; ``slack_error`` is its error code."""

    def __init__(self, message: str, slack_error: str):
        super().__init__(message)
        self.slack_error = slack_error


async def call(
    session: aiohttp.ClientSession, channel: SlackChannel, method: str, document: dict[str, Any]
) -> tuple[Answer, dict[str, Any]]:
    """One Web API call; its JSON answer when ``ok``, else the delivery error it calls for."""
    answer = await post_json(
        session,
        f"{channel.api_url.rstrip('/')}/{method}",
        document,
        timeout_s=channel.timeout_s,
        headers={"Authorization": f"Bearer {channel.token}"},
    )
    raise_for_status(answer.status, answer.retry_after)
    body = answer.json()
    if not isinstance(body, dict):
        raise TransientDeliveryError(f"Slack {method}: the answer is not JSON")
    if body.get("ok") is True:
        return answer, body
    raw = body.get("error")
    code = raw if isinstance(raw, str) and ERROR_CODE.match(raw) else "unknown_error"
    text = f"Slack {method}: {code}"
    if code in TRANSIENT_ERRORS:
        wait = parse_retry_after(answer.retry_after)
        if wait is not None:
            raise RetryAfter(f"{text}; retry after {wait:g}s", wait)
        raise TransientDeliveryError(text)
    raise SlackError(text, code)
