"""PagerDuty channel: Events API v2, one PagerDuty alert per Vigil alert.

``dedup_key`` is the alert's fingerprint (an incident's id for incidents), so the
trigger, the acknowledgement and the resolution all land on the same PagerDuty alert,
and a repeated trigger (a redelivery, the next escalation step) adds nothing new there.
Acknowledging in Vigil therefore acknowledges in PagerDuty.
"""

from __future__ import annotations

from typing import Any, Literal

import aiohttp

from services.notifier.channels.http import raise_for_status
from services.notifier.channels.posting import post_json
from services.notifier.channels.transport import Receipt
from services.notifier.domain import Notification
from services.notifier.templates import (
    clip,
    dashboard_url,
    digest_lines,
    runbook_url,
    severity_of,
    status_of,
    text_for,
)
from shared.channelconfig import ChannelBase, PagerDutyChannel
from shared.errors import PermanentDeliveryError

Action = Literal["trigger", "acknowledge", "resolve"]
SEVERITIES = {"critical": "critical", "error": "error", "warning": "warning", "info": "info"}
MAX_SUMMARY = 1024
MAX_DEDUP_KEY = 255


def event_action(payload: dict[str, Any]) -> Action:
    """acknowledge / resolve when this event leaves the alert so; anything else (fired,
    escalated, an escalation step, an incident opened) triggers."""
    status = status_of(payload)
    if status == "resolved":
        return "resolve"
    if status == "acknowledged":
        return "acknowledge"
    return "trigger"


def dedup_key(notification: Notification) -> str:
    payload = notification.payload
    if alert := payload.get("alert"):
        key = str(alert.get("fingerprint") or alert.get("id"))
    elif incident := payload.get("incident"):
        key = str(incident.get("id"))
    elif page := payload.get("page"):
        key = str(page.get("fingerprint") or page.get("alert_id") or notification.event_id)
    else:
        key = notification.event_id
    return key[:MAX_DEDUP_KEY]


def severity(payload: dict[str, Any]) -> str:
    """PagerDuty's four severities from Vigil's (warning/critical, incidents add info)."""
    return SEVERITIES.get(severity_of(payload), "error")


def event_for(channel: PagerDutyChannel, notification: Notification) -> dict[str, Any]:
    """The Events v2 document for this notification."""
    payload = notification.payload
    action = event_action(payload)
    event: dict[str, Any] = {
        "routing_key": notification.recipient or channel.routing_key,
        "event_action": action,
        "dedup_key": dedup_key(notification),
    }
    if action != "trigger":
        return event  # PagerDuty reads only the key for acknowledge and resolve
    alert = payload.get("alert") or {}
    labels: dict[str, str] = alert.get("labels") or {}
    summary = text_for(channel, notification)
    digest = digest_lines(notification)
    details: dict[str, Any] = {
        key: alert[key] for key in ("rule", "metric", "value", "threshold") if key in alert
    }
    details["labels"] = labels
    if incident := payload.get("incident"):
        details["incident"] = incident
    if page := payload.get("page"):
        details["page"] = page
    if digest:
        details["digest"] = digest
    details["event"] = payload.get("event")
    body: dict[str, Any] = {
        "summary": clip(summary, MAX_SUMMARY),
        "source": labels.get("host") or labels.get("instance") or channel.source,
        "severity": severity(payload),
        "custom_details": details,
    }
    if payload.get("time"):
        body["timestamp"] = payload["time"]
    if alert.get("metric"):
        body["component"] = clip(str(alert["metric"]), 255)
    if group := labels.get("service") or labels.get("job"):
        body["group"] = clip(group, 255)
    if alert.get("rule"):
        body["class"] = clip(str(alert["rule"]), 255)
    links = [{"href": dashboard_url(payload), "text": "Open in Vigil"}]
    if runbook := runbook_url(payload):
        links.append({"href": runbook, "text": "Runbook"})
    event.update(payload=body, links=links, client="Vigil", client_url=dashboard_url(payload))
    return event


async def deliver(
    session: aiohttp.ClientSession, channel: ChannelBase, notification: Notification
) -> Receipt:
    if not isinstance(channel, PagerDutyChannel):
        raise PermanentDeliveryError(f"channel {channel.name} is not a PagerDuty channel")
    answer = await post_json(
        session, channel.events_url, event_for(channel, notification), timeout_s=channel.timeout_s
    )
    raise_for_status(answer.status, answer.retry_after)
    return Receipt(status_code=answer.status, latency_ms=answer.latency_ms)
