"""The long tail of receivers (Telegram, ntfy, Pushover, Matrix, ...) through apprise,
which keeps up with each service's API so Vigil does not have to.

apprise makes its own connections, so the outbound guard cannot check them at connect
time as it does for Vigil's own requests; instead every configured server's host is
vetted before sending (a host that does not resolve is left to apprise, which cannot
reach it either). apprise reports success or failure but not why, so any failure is
treated as transient: retried with backoff, and dead-lettered only when that runs out.
"""

from __future__ import annotations

import asyncio
import re
import time

import aiohttp
import apprise

from services.notifier import templates
from services.notifier.channels.transport import Receipt
from services.notifier.domain import Notification
from shared import outbound
from shared.channelconfig import AppriseChannel
from shared.errors import PermanentDeliveryError, TransientDeliveryError

_SEPARATORS = re.compile(r"[\s,]+")


def urls_of(channel: AppriseChannel) -> list[str]:
    return [url for url in _SEPARATORS.split(channel.urls) if url]


def notify_type(notification: Notification) -> apprise.NotifyType:
    if templates.status_of(notification.payload) == "resolved":
        return apprise.NotifyType.SUCCESS
    severity = templates.severity_of(notification.payload)
    if severity == "critical":
        return apprise.NotifyType.FAILURE
    if severity == "warning":
        return apprise.NotifyType.WARNING
    return apprise.NotifyType.INFO


def body_for(channel: AppriseChannel, notification: Notification) -> str:
    payload = notification.payload
    lines = [templates.text_for(channel, notification), ""]
    lines += [f"{name}: {value}" for name, value in templates.fields_of(payload)]
    lines += ["", templates.dashboard_url(payload)]
    if runbook := templates.runbook_url(payload):
        lines.append(f"Runbook: {runbook}")
    if digest := templates.digest_lines(notification):
        lines += ["", *digest]
    return "\n".join(lines).strip()


def servers_for(channel: AppriseChannel) -> apprise.Apprise:
    """The channel's apprise servers; a URL apprise cannot read is a configuration error,
    named by its position (the URL itself holds credentials)."""
    servers = apprise.Apprise()
    for index, url in enumerate(urls_of(channel), start=1):
        if not servers.add(url):
            raise PermanentDeliveryError(f"apprise URL #{index} is not a URL apprise supports")
    if not len(servers):
        raise PermanentDeliveryError("no apprise URLs")
    return servers


async def vet(guard: outbound.OutboundGuard, servers: apprise.Apprise) -> None:
    for server in servers:
        host = getattr(server, "host", None)
        if not isinstance(host, str) or not host:
            continue
        port = server.port if isinstance(server.port, int) else (443 if server.secure else 80)
        try:
            await guard.addresses(host, port)
        except outbound.OutboundRefused as exc:
            raise PermanentDeliveryError(exc.description) from None
        except OSError:
            continue  # not a host name (some services keep a token there), or none


async def deliver(
    session: aiohttp.ClientSession, channel: AppriseChannel, notification: Notification
) -> Receipt:
    servers = servers_for(channel)
    await vet(outbound.guard_of(session), servers)
    started = time.perf_counter()
    try:
        async with asyncio.timeout(channel.timeout_s):
            result = await servers.async_notify(
                body=body_for(channel, notification),
                title=templates.title_for(channel, notification),
                notify_type=notify_type(notification),
                body_format=apprise.NotifyFormat.TEXT,
                timeout=channel.timeout_s,
            )
    except TimeoutError:
        raise TransientDeliveryError(f"timed out after {channel.timeout_s:g}s") from None
    if result.status != apprise.AppriseResultStatus.SUCCESS:
        failed = getattr(result, "failed_count", 0)
        raise TransientDeliveryError(
            f"apprise could not notify {failed} of {len(servers)} servers"
            f" ({result.status.name.lower()})"
        )
    return Receipt(status_code=None, latency_ms=(time.perf_counter() - started) * 1000)
