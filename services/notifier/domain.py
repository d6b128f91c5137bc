"""What gets notified, what a notification says, and when a channel is tried again.

Pure: no I/O. The handler asks these rules what to do with each (event, channel)
pair given what the delivery ledger already knows.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from shared.channelconfig import ALL_NOTIFIED_EVENTS, ChannelBase
from shared.configtypes import format_duration
from shared.events import (
    AlertAcknowledged,
    AlertEscalated,
    AlertEvent,
    AlertFired,
    AlertFlapping,
    AlertResolved,
    AlertSettled,
    AlertSuppressionChanged,
    EscalationStepFired,
    Event,
    IncidentOpened,
    IncidentResolved,
    NotificationDelivered,
    NotificationFailed,
    SuppressionRef,
    derived_id,
)
from shared.labels import bounded_labels

NOTIFIABLE_EVENTS = frozenset(ALL_NOTIFIED_EVENTS)

LedgerStatus = Literal["queued", "delivered", "failed"]


def delivery_id(event_id: str, channel: str, recipient: str = "") -> str:
    """One id per (event, channel, recipient): the ledger key and the receiver's dedupe key."""
    if recipient:
        return derived_id("delivery", event_id, channel, recipient)
    return derived_id("delivery", event_id, channel)


def is_notifiable(event: Event) -> bool:
    return event.type in NOTIFIABLE_EVENTS


def subscribed_channels(event: Event, channels: list[ChannelBase]) -> list[ChannelBase]:
    if not is_notifiable(event):
        return []
    return [channel for channel in channels if event.type in channel.events]


@dataclass(frozen=True)
class Notification:
    """One event addressed to one channel; channels render ``payload`` their own way."""

    delivery_id: str
    event_id: str
    event_type: str
    payload: dict[str, Any]
    # what an earlier delivery about the same alert or incident to this channel returned
    # (Slack: "<channel id>:<ts>" of the message to update; email: the thread's root id)
    thread: str | None = None
    # a user's contact address that replaces the channel's own target ("" = the channel's)
    recipient: str = ""
    # payloads merged into this message while the receiver was rate limited or grouped
    digest: tuple[dict[str, Any], ...] = ()


def notification_for(event: Event, channel: str, recipient: str = "") -> Notification:
    return Notification(
        delivery_id=delivery_id(event.id, channel, recipient),
        event_id=event.id,
        event_type=event.type,
        payload=payload_for(event),
        recipient=recipient,
    )


def subject_of(event: Event) -> str:
    """The alert or incident an event is about: its messages form one thread."""
    if isinstance(event, EscalationStepFired):
        return event.alert_id
    return event.aggregate_id


# --- payload -------------------------------------------------------------------


def _number(value: float | None) -> str:
    return "?" if value is None else f"{value:g}"


def summary_for(event: Event) -> str:
    """One human line, the same in every channel."""
    if isinstance(event, AlertEvent):
        where = f" [{bounded_labels(event.labels).text()}]" if event.labels else ""
        if isinstance(event, AlertFired):
            extra = f": {event.summary}" if event.summary else ""
            return (
                f"{event.severity.upper()} {event.rule} firing: {event.metric}="
                f"{_number(event.value)} (threshold {_number(event.threshold)}){where}{extra}"
            )
        if isinstance(event, AlertEscalated):
            return (
                f"{event.severity.upper()} {event.rule} escalated from {event.previous_severity}:"
                f" {event.metric}={_number(event.value)} (threshold {_number(event.threshold)})"
                f"{where}"
            )
        if isinstance(event, AlertAcknowledged):
            note = f": {event.comment}" if event.comment else ""
            return f"ACKNOWLEDGED {event.rule} by {event.by}{note}{where}"
        if isinstance(event, AlertResolved):
            how = {
                "manual": f"resolved by {event.by}",
                "rule_deleted": f"closed: its rule was deleted by {event.by}",
            }.get(event.reason, "recovered")
            value = f": {event.metric}={_number(event.value)}" if event.value is not None else ""
            return f"RESOLVED {event.rule} {how}{value}{where}"
        if isinstance(event, AlertSuppressionChanged):
            ended = "; ".join(_reason(r) for r in event.previous) or "suppression"
            return f"{event.severity.upper()} {event.rule} firing, no longer {ended}{where}"
        if isinstance(event, AlertFlapping):
            return (
                f"FLAPPING {event.rule}: {event.changes} changes within "
                f"{format_duration(event.window_s)}; its flips page nobody until it "
                f"settles{where}"
            )
        if isinstance(event, AlertSettled):
            return f"SETTLED {event.rule} stopped flapping, {event.status}{where}"
    if isinstance(event, EscalationStepFired):
        where = f" [{bounded_labels(event.labels).text()}]" if event.labels else ""
        extra = f": {event.summary}" if event.summary else ""
        return (
            f"{event.severity.upper()} {event.rule} still firing, not acknowledged "
            f"(escalation {event.policy}, step {event.step + 1}){where}{extra}"
        )
    if isinstance(event, IncidentOpened):
        return f"{event.severity.upper()} incident opened: {event.title}"
    if isinstance(event, IncidentResolved):
        return f"RESOLVED incident: {event.title} (by {event.by})"
    return event.type


def _reason(ref: SuppressionRef) -> str:
    """``silenced (s-1: deploy)``, ``inhibited by HostDown``, ``in maintenance ...``."""
    if ref.kind == "silence":
        return f"silenced ({ref.id}{': ' + ref.detail if ref.detail else ''})"
    if ref.kind == "inhibition":
        return f"inhibited by {ref.detail or ref.id}"
    if ref.kind == "maintenance":
        return f"in maintenance window {ref.id}"
    return "flapping"


def _alert_body(event: AlertEvent) -> dict[str, Any]:
    labels = bounded_labels(event.labels)
    body: dict[str, Any] = {
        "id": event.aggregate_id,
        "rule": event.rule,
        "severity": event.severity,
        "metric": event.metric,
        "labels": labels.labels,
        "labels_truncated": labels.truncated,
        "fingerprint": event.fingerprint,
        "value": None,
        "threshold": None,
        "status": "firing",
    }
    if isinstance(event, AlertFired | AlertEscalated):
        body["value"] = event.value
        body["threshold"] = event.threshold
    if isinstance(event, AlertEscalated):
        body["previous_severity"] = event.previous_severity
    if isinstance(event, AlertAcknowledged):
        body["status"] = "acknowledged"
        body["acknowledged_by"] = event.by
        body["comment"] = event.comment
    if isinstance(event, AlertResolved):
        body["value"] = event.value
        body["status"] = "resolved"
        body["resolved_by"] = event.by
        body["reason"] = event.reason
    if isinstance(event, AlertSuppressionChanged):
        body["status"] = event.status
        body["previously_suppressed_by"] = [r.model_dump(mode="json") for r in event.previous]
    if isinstance(event, AlertFlapping):
        body["status"] = "flapping"
        body["flapping"] = {"changes": event.changes, "window_s": event.window_s}
    if isinstance(event, AlertSettled):
        body["status"] = event.status
    return body


def _incident_body(event: IncidentOpened | IncidentResolved) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": event.aggregate_id,
        "title": event.title,
        "severity": event.severity,
    }
    if isinstance(event, IncidentOpened):
        body["status"] = "investigating"
        body["alert_id"] = event.alert_id
        body["opened_by"] = event.opened_by
    else:
        body["status"] = "resolved"
        body["resolved_by"] = event.by
        body["message"] = event.message
    return body


def payload_for(event: Event) -> dict[str, Any]:
    """The channel-neutral notification document (docs/notifications.md)."""
    payload: dict[str, Any] = {
        "event": event.type,
        "event_id": event.id,
        "time": event.time.isoformat(),
        "summary": summary_for(event),
    }
    if isinstance(event, AlertEvent):
        payload["alert"] = _alert_body(event)
    elif isinstance(event, EscalationStepFired):
        labels = bounded_labels(event.labels)
        payload["alert"] = {
            "id": event.alert_id,
            "rule": event.rule,
            "severity": event.severity,
            "metric": event.metric,
            "labels": labels.labels,
            "labels_truncated": labels.truncated,
            "fingerprint": event.fingerprint,
            "value": None,
            "threshold": None,
            "status": "firing",
        }
        payload["page"] = {
            "escalation_id": event.aggregate_id,
            "alert_id": event.alert_id,
            "policy": event.policy,
            "step": event.step + 1,  # as people count: the first step is 1
            "round": event.round + 1,
            "fingerprint": event.fingerprint,
            "rule": event.rule,
            "severity": event.severity,
        }
    elif isinstance(event, IncidentOpened | IncidentResolved):
        payload["incident"] = _incident_body(event)
    return payload


# --- what the ledger says ------------------------------------------------------


@dataclass(frozen=True)
class LedgerEntry:
    """What the ledger knows about one delivery id."""

    delivery_id: str
    status: LedgerStatus
    permanent: bool = False
    attempts: int = 0
    next_attempt_at: datetime | None = None
    outbox: bytes | None = None  # an outcome event recorded but not yet on the stream

    @property
    def settled(self) -> bool:
        return self.status in ("delivered", "failed")


# --- outcome events ------------------------------------------------------------


@dataclass(frozen=True)
class Addressed:
    """Who a delivery was for: its subject, and the person and address when a step paged one."""

    subject_id: str = ""
    recipient: str = ""
    user: str = ""


def delivered(
    trigger: Event,
    notification: Notification,
    channel: str,
    attempts: int,
    status_code: int | None,
    latency_ms: float,
    to: Addressed = Addressed(),
    digest: str = "",
    thread: str | None = None,
) -> NotificationDelivered:
    return NotificationDelivered(
        id=derived_id(notification.delivery_id, "delivered"),
        aggregate_id=notification.delivery_id,
        event_id=notification.event_id,
        event_type=notification.event_type,
        channel=channel,
        attempts=attempts,
        status_code=status_code,
        latency_ms=round(latency_ms, 3),
        subject_id=to.subject_id,
        recipient=to.recipient,
        user=to.user,
        digest=digest,
        thread=thread or "",
        correlation_id=trigger.correlation_id,
        causation_id=trigger.id,
    )


def failed(
    trigger: Event,
    notification: Notification,
    channel: str,
    attempts: int,
    error: str,
    permanent: bool,
    to: Addressed = Addressed(),
    digest: str = "",
    gave_up: bool = False,
) -> NotificationFailed:
    return NotificationFailed(
        id=derived_id(notification.delivery_id, "failed", attempts),
        aggregate_id=notification.delivery_id,
        event_id=notification.event_id,
        event_type=notification.event_type,
        channel=channel,
        attempts=attempts,
        error=error[:2000],
        permanent=permanent,
        gave_up=gave_up,
        subject_id=to.subject_id,
        recipient=to.recipient,
        user=to.user,
        digest=digest,
        correlation_id=trigger.correlation_id,
        causation_id=trigger.id,
    )
