"""The notifications the channel tests send: one alert's life, an incident, a digest."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from typing import Any

from services.notifier.domain import Notification, notification_for
from shared.events import (
    AlertAcknowledged,
    AlertEscalated,
    AlertFired,
    AlertResolved,
    IncidentOpened,
    IncidentResolved,
)

AT = datetime(2026, 11, 30, 3, 4, 5, tzinfo=UTC)
RUNBOOK = "https://runbooks.example.com/cpu-high"
LABELS = {"host": "db-1", "service": "billing", "runbook_url": RUNBOOK}
ALERT: dict[str, Any] = {
    "aggregate_id": "alert-7",
    "rule": "cpu-high",
    "fingerprint": "fp-cpu-high-db-1",
    "metric": "cpu",
    "labels": LABELS,
    "time": AT,
}

FIRED = notification_for(
    AlertFired(**ALERT, severity="critical", value=97.5, threshold=90, summary="CPU pegged"), "ops"
)
WARNING = notification_for(AlertFired(**ALERT, severity="warning", value=85, threshold=80), "ops")
ESCALATED = notification_for(
    AlertEscalated(
        **ALERT, severity="critical", previous_severity="warning", value=99, threshold=90
    ),
    "ops",
)
ACKNOWLEDGED = notification_for(AlertAcknowledged(**ALERT, severity="critical", by="ana"), "ops")
RESOLVED = notification_for(AlertResolved(**ALERT, severity="critical", value=40.0), "ops")
INCIDENT = notification_for(
    IncidentOpened(aggregate_id="inc-3", title="API down", severity="info", time=AT), "ops"
)
INCIDENT_RESOLVED = notification_for(
    IncidentResolved(
        aggregate_id="inc-3",
        title="API down",
        severity="info",
        by="ana",
        previous_status="investigating",
        time=AT,
    ),
    "ops",
)


def with_digest(note: Notification, count: int) -> Notification:
    """``note`` with ``count`` other alerts of its group merged in."""
    others = tuple(
        notification_for(
            AlertFired(
                **{**ALERT, "aggregate_id": f"alert-{i}", "labels": {"host": f"web-{i}"}},
                severity="critical",
                value=95,
                threshold=90,
            ),
            "ops",
        ).payload
        for i in range(count)
    )
    return dataclasses.replace(note, digest=others)


def with_labels(note: Notification, count: int, value: str = "v") -> Notification:
    payload = {**note.payload, "alert": {**note.payload["alert"]}}
    payload["alert"]["labels"] = {f"label_{i:02d}": value for i in range(count)}
    return dataclasses.replace(note, payload=payload)
