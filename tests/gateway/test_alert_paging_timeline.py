"""An alert's timeline shows each escalation step (who, how, when) and each delivery outcome;
an incident's shows the outcomes of the notifications about it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from services.gateway.app import Gateway
from shared import subjects
from shared.bus import EventBus
from shared.events import (
    AlertAcknowledged,
    AlertFired,
    IncidentOpened,
    NotificationDelivered,
    NotificationFailed,
)
from shared.events.paging import (
    EscalationStarted,
    EscalationStepFired,
    EscalationStepScheduled,
    EscalationStopped,
    PageTarget,
)
from tests.gateway.conftest import checkpoint
from tests.waiting import eventually

T0 = datetime(2030, 5, 1, 12, 0, tzinfo=UTC)
ALERT: dict[str, Any] = {
    "rule": "HighCPU",
    "fingerprint": "fp-1",
    "metric": "cpu",
    "severity": "critical",
}
PAGE: dict[str, Any] = {"aggregate_id": "x-1", "alert_id": "a-1", "policy": "critical"}
IDENTITY: dict[str, Any] = {"fingerprint": "fp-1", "rule": "HighCPU", "severity": "critical"}


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


async def publish_story(bus: EventBus) -> dict[str, int]:
    last: dict[str, int] = {}
    story: list[tuple[str, str, Any]] = [
        (
            "gateway-alerts",
            subjects.alert("a-1"),
            AlertFired(aggregate_id="a-1", value=97, threshold=90, time=at(0), **ALERT),
        ),
        (
            "gateway-paging",
            subjects.escalation("x-1"),
            EscalationStarted(time=at(0), **PAGE, **IDENTITY),
        ),
        (
            "gateway-paging",
            subjects.escalation("x-1"),
            EscalationStepFired(
                step=0,
                round=0,
                targets=[
                    PageTarget(channel="slack", via="channel"),
                    PageTarget(
                        channel="mail",
                        recipient="bob@example.com",
                        user="bob",
                        via="schedule:ops",
                    ),
                ],
                unresolved=["user:zed: 'zed' has no contact methods configured"],
                time=at(1),
                **PAGE,
                **IDENTITY,
            ),
        ),
        (
            "gateway-paging",
            subjects.escalation("x-1"),
            EscalationStepScheduled(step=1, round=0, due_at=at(301), time=at(1), **PAGE),
        ),
        (
            "gateway-notifications",
            subjects.notification("d-1"),
            NotificationDelivered(
                aggregate_id="d-1",
                event_id="fired-1",
                event_type="EscalationStepFired",
                channel="mail",
                subject_id="a-1",
                recipient="bob@example.com",
                user="bob",
                attempts=1,
                status_code=250,
                latency_ms=40.0,
                time=at(2),
            ),
        ),
        (
            "gateway-notifications",
            subjects.notification("d-2"),
            NotificationFailed(
                aggregate_id="d-2",
                event_id="fired-1",
                event_type="EscalationStepFired",
                channel="slack",
                subject_id="a-1",
                attempts=3,
                error="HTTP 404",
                permanent=True,
                time=at(3),
            ),
        ),
        (
            "gateway-alerts",
            subjects.alert("a-1"),
            AlertAcknowledged(aggregate_id="a-1", by="bob", time=at(4), version=2, **ALERT),
        ),
        (
            "gateway-paging",
            subjects.escalation("x-1"),
            EscalationStopped(reason="acknowledged", by="bob", time=at(4), **PAGE),
        ),
        (
            "gateway-incidents",
            subjects.incident("i-1"),
            IncidentOpened(aggregate_id="i-1", title="web-1 down", severity="critical", time=at(5)),
        ),
        (
            "gateway-notifications",
            subjects.notification("d-3"),
            NotificationFailed(
                aggregate_id="d-3",
                event_id="opened-1",
                event_type="IncidentOpened",
                channel="pager",
                subject_id="i-1",
                attempts=40,
                error="HTTP 503",
                permanent=False,
                gave_up=True,
                time=at(6),
            ),
        ),
        (  # about nothing in particular: on no timeline
            "gateway-notifications",
            subjects.notification("d-4"),
            NotificationDelivered(
                aggregate_id="d-4",
                event_id="w-1",
                event_type="WatchdogAlarm",
                channel="pager",
                attempts=1,
                latency_ms=5.0,
                time=at(7),
            ),
        ),
    ]
    for projection, subject, event in story:
        last[projection] = await bus.publish(subject, event)
    return last


async def caught_up(gateway: Gateway, last: dict[str, int]) -> None:
    async def probe() -> bool:
        return all([await checkpoint(gateway, name) >= seq for name, seq in last.items()])

    await eventually(probe, what="projections caught up")


async def test_alert_timeline_shows_steps_and_delivery_outcomes(
    gateway: Gateway, client: httpx.AsyncClient, bus: EventBus
) -> None:
    await caught_up(gateway, await publish_story(bus))
    response = await client.get("/api/monitoring/alerts/a-1")
    assert response.status_code == 200, response.text
    timeline = response.json()["timeline"]
    assert [(e["stream"], e["type"], e["by"], e["detail"]) for e in timeline] == [
        ("ALERTS", "AlertFired", "", "cpu = 97 ≥ 90"),
        ("PAGING", "EscalationStarted", "", "escalation critical started"),
        (
            "PAGING",
            "EscalationStepFired",
            "",
            "step 1 of critical paged channel slack; bob via mail (bob@example.com), "
            "schedule:ops; not reached: user:zed: 'zed' has no contact methods configured",
        ),
        (
            "PAGING",
            "EscalationStepScheduled",
            "",
            "step 2 of critical due at 2030-05-01T12:05:01+00:00",
        ),
        (
            "NOTIFICATIONS",
            "NotificationDelivered",
            "bob",
            "EscalationStepFired delivered to mail → bob@example.com (250) after 1 attempt",
        ),
        (
            "NOTIFICATIONS",
            "NotificationFailed",
            "",
            "EscalationStepFired to slack failed permanently after 3 attempts: HTTP 404",
        ),
        ("ALERTS", "AlertAcknowledged", "bob", ""),
        ("PAGING", "EscalationStopped", "bob", "escalation critical stopped: acknowledged"),
    ]
    times = [datetime.fromisoformat(e["time"].replace("Z", "+00:00")) for e in timeline]
    assert times == sorted(times)
    fired = timeline[2]["event"]
    assert [t["user"] for t in fired["targets"]] == ["", "bob"]  # the whole event, for the UI


async def test_incident_timeline_shows_its_notification_outcomes(
    gateway: Gateway, client: httpx.AsyncClient, bus: EventBus
) -> None:
    await caught_up(gateway, await publish_story(bus))
    response = await client.get("/api/monitoring/incidents/i-1")
    assert response.status_code == 200, response.text
    timeline = response.json()["timeline"]
    assert [(e["stream"], e["type"], e["detail"]) for e in timeline] == [
        ("INCIDENTS", "IncidentOpened", timeline[0]["detail"]),
        (
            "NOTIFICATIONS",
            "NotificationFailed",
            "IncidentOpened to pager gave up after 40 attempts: HTTP 503",
        ),
    ]
