"""DataDog channel: alert and incident events as DataDog events (``POST /api/v1/events``).

Events of one alert share ``aggregation_key`` = the alert's fingerprint (an incident's
id for incidents), so DataDog rolls an alert's firing, escalation and recovery into one
entry of its event stream and monitors can match on it.
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

import aiohttp
import orjson

from services.notifier import templates
from services.notifier.channels.http import outbound_errors, raise_for_status
from services.notifier.channels.transport import Receipt
from services.notifier.domain import Notification
from shared import outbound
from shared.channelconfig import DatadogChannel

MAX_TITLE_CHARS = 100
MAX_TEXT_CHARS = 4000
MAX_AGGREGATION_KEY_CHARS = 100
MAX_TAG_CHARS = 200
MAX_RESPONSE_BYTES = 64 * 1024
SOURCE_TYPE = "vigil"
RESOLVED_EVENTS = frozenset({"AlertResolved", "IncidentResolved"})


def auth_headers(channel: DatadogChannel) -> dict[str, str]:
    headers = {"DD-API-KEY": channel.api_key}
    if channel.app_key:
        headers["DD-APPLICATION-KEY"] = channel.app_key
    return headers


def alert_type(event_type: str, severity: str | None) -> str:
    if event_type in RESOLVED_EVENTS:
        return "success"
    if severity == "critical":
        return "error"
    if severity == "warning":
        return "warning"
    return "info"


def _subject(payload: dict[str, Any]) -> dict[str, Any]:
    subject = payload.get("alert") or payload.get("incident")
    return subject if isinstance(subject, dict) else {}


def _tags(channel: DatadogChannel, payload: dict[str, Any]) -> list[str]:
    tags = [*channel.tags, "source:vigil", f"event:{payload.get('event', '')}"]
    if alert := payload.get("alert"):
        tags += [f"rule:{alert['rule']}", f"severity:{alert['severity']}"]
        tags += [f"metric:{alert['metric']}"]
        tags += [f"{name}:{value}" for name, value in sorted(alert.get("labels", {}).items())]
    elif incident := payload.get("incident"):
        tags += [f"incident:{incident['id']}", f"severity:{incident['severity']}"]
    return [tag[:MAX_TAG_CHARS] for tag in tags]


def _text(notification: Notification, body: str | None) -> str:
    payload = notification.payload
    lines = [body or str(payload.get("summary") or notification.event_type), ""]
    lines += [f"{name}: {value}" for name, value in templates.fields_of(payload)]
    lines += ["", f"Vigil: {templates.dashboard_url(payload)}"]
    if runbook := templates.runbook_url(payload):
        lines.append(f"Runbook: {runbook}")
    if digest := templates.digest_lines(notification):
        lines += ["", *digest]
    return "\n".join(lines).strip()[:MAX_TEXT_CHARS]


def _happened(payload: dict[str, Any]) -> int:
    try:
        return int(datetime.fromisoformat(payload["time"]).timestamp())
    except (KeyError, TypeError, ValueError):
        return int(time.time())


def event_for(channel: DatadogChannel, notification: Notification) -> dict[str, Any]:
    """The documented v1 event body; the channel's templates, when it has them, write
    the title and the first lines of the text."""
    payload = notification.payload
    template = channel.template
    title = templates.title_for(channel, notification) if template and template.title else None
    text = templates.text_for(channel, notification) if template and template.text else None
    subject = _subject(payload)
    severity = subject.get("severity")
    key = subject.get("fingerprint") or subject.get("id") or notification.event_id
    return {
        "title": (title or payload.get("summary") or notification.event_type)[:MAX_TITLE_CHARS],
        "text": _text(notification, text),
        "alert_type": alert_type(notification.event_type, severity),
        "priority": "low" if notification.event_type in RESOLVED_EVENTS else "normal",
        "tags": _tags(channel, payload),
        "aggregation_key": str(key)[:MAX_AGGREGATION_KEY_CHARS],
        "source_type_name": SOURCE_TYPE,
        "date_happened": _happened(payload),
    }


async def deliver(
    session: aiohttp.ClientSession, channel: DatadogChannel, notification: Notification
) -> Receipt:
    body = orjson.dumps(event_for(channel, notification))
    headers = {"Content-Type": "application/json", **auth_headers(channel)}
    url = channel.api_url.rstrip("/") + "/api/v1/events"
    started = time.perf_counter()
    async with (
        outbound_errors(channel.timeout_s),
        outbound.request(
            session, "POST", url, data=body, headers=headers, timeout_s=channel.timeout_s
        ) as response,
    ):
        await response.content.read(MAX_RESPONSE_BYTES)
        status, retry_after = response.status, response.headers.get("Retry-After")
    raise_for_status(status, retry_after)
    return Receipt(status_code=status, latency_ms=(time.perf_counter() - started) * 1000)
