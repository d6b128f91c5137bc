"""Pure rules: which channels get an event, what the payload says, when to try again."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson

from services.notifier.channels.http import parse_retry_after
from services.notifier.domain import (
    LedgerEntry,
    delivery_id,
    notification_for,
    payload_for,
    subscribed_channels,
)
from shared.channelconfig import WebhookChannel
from shared.events import (
    AlertAcknowledged,
    AlertEscalated,
    AlertFired,
    AlertResolved,
    IncidentOpened,
    IncidentResolved,
)

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)

FIRED = AlertFired(
    id="evt-1",
    aggregate_id="alert-1",
    time=NOW,
    rule="HighCPU",
    fingerprint="fp",
    metric="system_cpu_percent",
    labels={"host": "web-1"},
    severity="critical",
    value=93.5,
    threshold=90,
    summary="CPU is hot",
)


def channel(name: str, events: list[str] | None = None) -> WebhookChannel:
    if events is None:
        return WebhookChannel(name=name, type="webhook", url="http://x.invalid/")
    return WebhookChannel(name=name, type="webhook", url="http://x.invalid/", events=events)


def test_delivery_id_is_the_same_for_the_same_event_and_channel() -> None:
    assert delivery_id("evt-1", "ops") == delivery_id("evt-1", "ops")
    assert delivery_id("evt-1", "ops") != delivery_id("evt-1", "dev")
    assert notification_for(FIRED, "ops").delivery_id == delivery_id("evt-1", "ops")


def test_only_channels_subscribed_to_the_type_get_the_event() -> None:
    ops, incidents_only = channel("ops"), channel("inc", ["IncidentOpened"])
    assert subscribed_channels(FIRED, [ops, incidents_only]) == [ops]
    acked = AlertAcknowledged(
        aggregate_id="alert-1",
        rule="HighCPU",
        fingerprint="fp",
        metric="m",
        severity="critical",
        by="alice",
    )
    # an acknowledgement updates what was sent (a Slack message, a PagerDuty incident)
    assert subscribed_channels(acked, [ops, incidents_only]) == [ops]


def test_alert_fired_payload() -> None:
    assert payload_for(FIRED) == {
        "event": "AlertFired",
        "event_id": "evt-1",
        "time": "2025-03-01T12:00:00+00:00",
        "summary": "CRITICAL HighCPU firing: system_cpu_percent=93.5 (threshold 90)"
        " [host=web-1]: CPU is hot",
        "alert": {
            "id": "alert-1",
            "rule": "HighCPU",
            "severity": "critical",
            "metric": "system_cpu_percent",
            "labels": {"host": "web-1"},
            "labels_truncated": 0,
            "fingerprint": "fp",
            "value": 93.5,
            "threshold": 90.0,
            "status": "firing",
        },
    }


def test_an_alert_with_many_long_labels_is_notified_with_a_bounded_label_set() -> None:
    labels = {f"label_{n:02}": "v" * (300 if n == 0 else 10) for n in range(64)}
    fired = FIRED.model_copy(update={"labels": labels})
    body = payload_for(fired)
    sent = body["alert"]["labels"]
    assert list(sent) == [f"label_{n:02}" for n in range(32)]
    assert sent["label_00"] == "v" * 255 + "…"
    assert sent["label_31"] == "v" * 10
    assert body["alert"]["labels_truncated"] == 32 + 1
    assert "label_32" not in body["summary"]
    assert "(33 labels not shown in full)]: CPU is hot" in body["summary"]
    assert len(orjson.dumps(body)) < 20_000


def test_escalated_and_resolved_alert_payloads() -> None:
    escalated = AlertEscalated(
        aggregate_id="a",
        rule="HighCPU",
        fingerprint="fp",
        metric="cpu",
        severity="critical",
        previous_severity="warning",
        value=95,
        threshold=90,
    )
    body = payload_for(escalated)
    assert body["summary"] == "CRITICAL HighCPU escalated from warning: cpu=95 (threshold 90)"
    assert body["alert"]["previous_severity"] == "warning"
    assert body["alert"]["status"] == "firing"

    resolved = AlertResolved(
        aggregate_id="a",
        rule="HighCPU",
        fingerprint="fp",
        metric="cpu",
        severity="critical",
        value=12.0,
    )
    body = payload_for(resolved)
    assert body["summary"] == "RESOLVED HighCPU recovered: cpu=12"
    assert (body["alert"]["status"], body["alert"]["value"], body["alert"]["threshold"]) == (
        "resolved",
        12.0,
        None,
    )


def test_incident_payloads() -> None:
    opened = IncidentOpened(aggregate_id="inc-1", title="API down", severity="critical")
    assert payload_for(opened)["incident"] == {
        "id": "inc-1",
        "title": "API down",
        "severity": "critical",
        "status": "investigating",
        "alert_id": "",
        "opened_by": "vigil",
    }
    assert payload_for(opened)["summary"] == "CRITICAL incident opened: API down"
    resolved = IncidentResolved(
        aggregate_id="inc-1",
        title="API down",
        severity="critical",
        previous_status="monitoring",
        by="bob",
    )
    assert payload_for(resolved)["incident"]["status"] == "resolved"
    assert payload_for(resolved)["summary"] == "RESOLVED incident: API down (by bob)"


def test_delivered_and_failed_rows_are_settled_queued_ones_are_not() -> None:
    assert LedgerEntry("d", "delivered").settled
    assert LedgerEntry("d", "failed", permanent=True).settled
    # a failure after the whole retry window is settled too: only a re-drive reopens it
    assert LedgerEntry("d", "failed", permanent=False).settled
    assert not LedgerEntry("d", "queued", attempts=3).settled


def test_retry_after_header_forms() -> None:
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after("Sat, 01 Mar 2025 12:00:30 GMT", NOW) == 30.0
    assert parse_retry_after("Sat, 01 Mar 2025 11:00:00 GMT", NOW) == 0.0
    assert parse_retry_after("999999") == 3600.0
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None
