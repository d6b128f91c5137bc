"""Webhook channel: POST the notification as signed JSON.

Two signatures, both HMAC-SHA256 keyed by the channel's secret:
``X-Vigil-Signature-256: t=<unix seconds>,v1=<hex of HMAC("<t>." + body)>`` signs the
send time with the body, so a receiver can refuse a replayed request (as Stripe and
Slack do); ``X-Vigil-Signature: <hex of HMAC(body)>`` is the older form, still sent for
receivers written against it.
"""

from __future__ import annotations

import hashlib
import hmac
import time

import aiohttp
import orjson

from services.notifier import templates
from services.notifier.channels.http import outbound_errors, raise_for_status
from services.notifier.channels.transport import Receipt
from services.notifier.domain import Notification
from shared import outbound
from shared.channelconfig import WebhookChannel
from shared.errors import PermanentDeliveryError

MAX_RESPONSE_BYTES = 64 * 1024


SIGNATURE_HEADER = "X-Vigil-Signature-256"
LEGACY_SIGNATURE_HEADER = "X-Vigil-Signature"
DEFAULT_TOLERANCE_S = 300.0


def signature(secret: str, body: bytes) -> str:
    """Hex HMAC-SHA256 of the exact body bytes: what X-Vigil-Signature carries."""
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def timestamped_signature(secret: str, body: bytes, at: int) -> str:
    """The X-Vigil-Signature-256 value: ``t=<at>,v1=<hex HMAC of "<at>." + body>``."""
    signed = hmac.new(secret.encode(), f"{at}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={at},v1={signed}"


def verify(
    secret: str,
    header: str,
    body: bytes,
    now: float | None = None,
    tolerance_s: float = DEFAULT_TOLERANCE_S,
) -> bool:
    """What a receiver does: the signature matches and was made within ``tolerance_s``."""
    parts: dict[str, list[str]] = {}
    for item in header.split(","):
        key, _, value = item.strip().partition("=")
        parts.setdefault(key, []).append(value)
    try:
        at = int(parts["t"][0])
    except (KeyError, ValueError):
        return False
    if abs((time.time() if now is None else now) - at) > tolerance_s:
        return False
    expected = timestamped_signature(secret, body, at).rsplit("v1=", 1)[1]
    return any(hmac.compare_digest(expected, given) for given in parts.get("v1", []))


def body_for(channel: WebhookChannel, notification: Notification) -> bytes:
    """The notification document, with ``digest`` listing what was merged into it; or
    the channel's ``body_template`` rendered over the same document (it must give JSON)."""
    document = dict(notification.payload)
    if notification.digest:
        document["digest"] = list(notification.digest)
    if not channel.body_template:
        return orjson.dumps(document)
    rendered = templates.render(
        channel.body_template, templates.context_for(notification), f"{channel.name}.body"
    )
    try:
        orjson.loads(rendered)
    except orjson.JSONDecodeError as exc:
        raise PermanentDeliveryError(
            f"body_template of {channel.name!r} did not render JSON: {exc}"
        ) from None
    return rendered.encode()


def request_for(
    channel: WebhookChannel, notification: Notification, at: int | None = None
) -> tuple[bytes, dict[str, str]]:
    body = body_for(channel, notification)
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "vigil-notifier",
        "X-Vigil-Event": notification.event_type,
        "X-Vigil-Event-Id": notification.event_id,
        "X-Vigil-Delivery": notification.delivery_id,
    }
    if channel.secret:
        sent_at = int(time.time()) if at is None else at
        headers[SIGNATURE_HEADER] = timestamped_signature(channel.secret, body, sent_at)
        headers[LEGACY_SIGNATURE_HEADER] = signature(channel.secret, body)
    return body, headers


async def deliver(
    session: aiohttp.ClientSession, channel: WebhookChannel, notification: Notification
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
