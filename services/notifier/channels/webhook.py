"""Webhook channel: POST the notification as signed JSON."""

from __future__ import annotations

import hashlib
import hmac
import time

import aiohttp
import orjson

from services.notifier.channels.http import outbound_errors, raise_for_status
from services.notifier.channels.transport import Receipt
from services.notifier.domain import Notification
from shared import outbound
from shared.config import ChannelConfig

MAX_RESPONSE_BYTES = 64 * 1024


def signature(secret: str, body: bytes) -> str:
    """Hex HMAC-SHA256 of the exact body bytes: what X-Vigil-Signature carries."""
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def request_for(channel: ChannelConfig, notification: Notification) -> tuple[bytes, dict[str, str]]:
    body = orjson.dumps(notification.payload)
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "vigil-notifier",
        "X-Vigil-Event": notification.event_type,
        "X-Vigil-Event-Id": notification.event_id,
        "X-Vigil-Delivery": notification.delivery_id,
    }
    if channel.secret:
        headers["X-Vigil-Signature"] = signature(channel.secret, body)
    return body, headers


async def deliver(
    session: aiohttp.ClientSession, channel: ChannelConfig, notification: Notification
) -> Receipt:
    body, headers = request_for(channel, notification)
    started = time.perf_counter()
    async with (
        outbound_errors(channel.timeout_s),
        outbound.request(
            session,
            "POST",
            channel.url,
            data=body,
            headers=headers,
            timeout_s=channel.timeout_s,
            max_redirects=0,  # a receiver that moved is a configuration to fix, not follow
        ) as response,
    ):
        await response.content.read(MAX_RESPONSE_BYTES)
        status = response.status
        retry_after = response.headers.get("Retry-After")
    raise_for_status(status, retry_after)
    return Receipt(status_code=status, latency_ms=(time.perf_counter() - started) * 1000)
