"""Critical alerts open incidents and their recovery resolves them, with both services running."""

from __future__ import annotations

import time

from services.alerts.app import build as build_alerts
from services.incidents.app import IncidentsService, attach
from services.incidents.handlers import incident_id_for
from shared import subjects
from shared.bus import EventBus
from shared.commands import MAX_TITLE_CHARS
from shared.config import IncidentPolicy, RuleConfig, VigilConfig
from shared.consumer import Delivery
from shared.events import (
    AlertEvent,
    Event,
    IncidentNoteAdded,
    IncidentOpened,
    IncidentResolved,
    Sample,
    SamplesIngested,
)
from shared.runtime import ServiceRuntime
from shared.settings import Settings
from tests.conftest import RuntimeFactory
from tests.waiting import caught_up, eventually

RULES = [RuleConfig(name="HighCPU", metric="cpu", warning=70, critical=90)]
CONFIG = VigilConfig(rules=RULES)


async def send(bus: EventBus, *values: float) -> None:
    samples = [Sample(name="cpu", value=v, labels={"host": "api-1"}) for v in values]
    await bus.publish(
        subjects.samples("test"),
        SamplesIngested(aggregate_id="test", samples=samples, received_at=time.time()),
    )


async def stream_events(bus: EventBus, stream: str) -> list[Event]:
    return [r.event async for r in bus.replay(stream)]


async def wait_for(bus: EventBus, stream: str, count: int) -> list[Event]:
    async def probe() -> list[Event]:
        events = await stream_events(bus, stream)
        return events if len(events) >= count else []

    return await eventually(probe)


def redelivery(event: AlertEvent, seq: int) -> Delivery:
    return Delivery("ALERTS", subjects.alert(event.aggregate_id), seq, 2, "incidents-from-alerts")


async def start_incidents(
    settings: Settings, config: VigilConfig, start_service: RuntimeFactory
) -> IncidentsService:
    """The incidents service, with its handler at hand to replay deliveries into it."""
    runtime = ServiceRuntime("incidents", settings)
    service = attach(runtime, config)
    await start_service(runtime)
    return service


async def test_a_critical_alert_opens_one_incident_and_its_recovery_resolves_it(
    bus: EventBus, settings: Settings, start_service: RuntimeFactory
) -> None:
    await start_service(build_alerts(settings, CONFIG))
    incidents = await start_incidents(settings, CONFIG, start_service)

    await send(bus, 96)
    (opened,) = await wait_for(bus, "INCIDENTS", 1)
    (fired,) = await stream_events(bus, "ALERTS")
    assert isinstance(fired, AlertEvent) and fired.severity == "critical"
    assert isinstance(opened, IncidentOpened)
    assert opened.aggregate_id == incident_id_for(fired.fingerprint, 0)
    assert (opened.severity, opened.opened_by, opened.alert_id) == (
        "critical",
        "vigil",
        fired.aggregate_id,
    )
    assert opened.fingerprint == fired.fingerprint
    assert opened.title == "HighCPU: cpu{host=api-1} is critical"
    assert (opened.causation_id, opened.correlation_id) == (fired.id, fired.correlation_id)

    # the same alert event delivered again opens nothing more
    await caught_up(bus, "incidents-from-alerts", "ALERTS")
    await incidents.from_alerts.handle(fired, redelivery(fired, 1))
    await incidents.from_alerts.handle(fired, redelivery(fired, 1))
    assert len(await stream_events(bus, "INCIDENTS")) == 1

    await send(bus, 12)
    events = await wait_for(bus, "INCIDENTS", 2)
    resolved = events[1]
    assert isinstance(resolved, IncidentResolved)
    assert (resolved.aggregate_id, resolved.by, resolved.previous_status) == (
        opened.aggregate_id,
        "vigil",
        "investigating",
    )
    assert resolved.message == "Alert HighCPU recovered."
    alert_resolved = (await stream_events(bus, "ALERTS"))[1]
    assert isinstance(alert_resolved, AlertEvent)
    await caught_up(bus, "incidents-from-alerts", "ALERTS")
    await incidents.from_alerts.handle(alert_resolved, redelivery(alert_resolved, 2))
    assert len(await stream_events(bus, "INCIDENTS")) == 2


async def test_an_alert_with_many_long_labels_opens_an_incident_with_a_bounded_title(
    bus: EventBus, settings: Settings, start_service: RuntimeFactory
) -> None:
    await start_service(build_alerts(settings, CONFIG))
    await start_incidents(settings, CONFIG, start_service)
    labels = {f"label_{n:02}": "v" * 500 for n in range(64)}
    sample = Sample(name="cpu", value=99, labels=labels)
    await bus.publish(
        subjects.samples("test"),
        SamplesIngested(aggregate_id="test", samples=[sample], received_at=time.time()),
    )
    (opened,) = await wait_for(bus, "INCIDENTS", 1)
    assert isinstance(opened, IncidentOpened)
    assert len(opened.title) == MAX_TITLE_CHARS
    assert opened.title.startswith("HighCPU: cpu{label_00=vvv")
    assert opened.title.endswith("…")
    (fired,) = await stream_events(bus, "ALERTS")
    assert isinstance(fired, AlertEvent) and fired.labels == labels  # the alert keeps them all


async def test_escalation_opens_the_incident_and_warnings_do_not(
    bus: EventBus, settings: Settings, start_service: RuntimeFactory
) -> None:
    await start_service(build_alerts(settings, CONFIG))
    await start_incidents(settings, CONFIG, start_service)

    await send(bus, 75)
    await wait_for(bus, "ALERTS", 1)
    await caught_up(bus, "incidents-from-alerts", "ALERTS")
    assert await stream_events(bus, "INCIDENTS") == []

    await send(bus, 93, 97, 91)
    (opened,) = await wait_for(bus, "INCIDENTS", 1)
    alert_events = await stream_events(bus, "ALERTS")
    assert [e.type for e in alert_events] == ["AlertFired", "AlertEscalated"]
    assert isinstance(opened, IncidentOpened) and opened.alert_id == alert_events[0].aggregate_id
    await caught_up(bus, "incidents-from-alerts", "ALERTS")
    assert len(await stream_events(bus, "INCIDENTS")) == 1


async def test_without_auto_resolve_the_incident_stays_open(
    bus: EventBus, settings: Settings, start_service: RuntimeFactory
) -> None:
    config = VigilConfig(rules=RULES, incidents=IncidentPolicy(auto_resolve=False))
    await start_service(build_alerts(settings, config))
    incidents = await start_incidents(settings, config, start_service)

    await send(bus, 95, 10)
    assert [e.type for e in await wait_for(bus, "ALERTS", 2)] == ["AlertFired", "AlertResolved"]
    await wait_for(bus, "INCIDENTS", 1)
    await caught_up(bus, "incidents-from-alerts", "ALERTS")
    assert [e.type for e in await stream_events(bus, "INCIDENTS")] == ["IncidentOpened"]

    # the series goes critical again while its incident is open: noted there, never a second
    await send(bus, 97)
    alerts = await wait_for(bus, "ALERTS", 3)
    events = await wait_for(bus, "INCIDENTS", 2)
    await caught_up(bus, "incidents-from-alerts", "ALERTS")
    assert [e.type for e in await stream_events(bus, "INCIDENTS")] == [
        "IncidentOpened",
        "IncidentNoteAdded",
    ]
    opened, noted = events
    assert isinstance(noted, IncidentNoteAdded) and noted.aggregate_id == opened.aggregate_id
    assert noted.text.startswith(f"Alert {alerts[2].aggregate_id} went critical again: cpu = 97")
    assert noted.causation_id == alerts[2].id

    # once a person resolves it, the next critical run opens the series' next incident
    await incidents.commands.change_status(
        {"incident_id": opened.aggregate_id, "status": "resolved", "by": "sam"}
    )
    await send(bus, 10, 99)
    events = await wait_for(bus, "INCIDENTS", 4)
    second = events[3]
    assert isinstance(second, IncidentOpened)
    assert second.aggregate_id == incident_id_for(opened.fingerprint, 1) != opened.aggregate_id


async def test_each_critical_run_of_a_series_gets_its_own_incident_and_redelivery_adds_none(
    bus: EventBus, settings: Settings, start_service: RuntimeFactory
) -> None:
    await start_service(build_alerts(settings, CONFIG))
    incidents = await start_incidents(settings, CONFIG, start_service)

    await send(bus, 95, 10, 96, 11)
    events = await wait_for(bus, "INCIDENTS", 4)
    assert [e.type for e in events] == [
        "IncidentOpened",
        "IncidentResolved",
        "IncidentOpened",
        "IncidentResolved",
    ]
    fingerprint = events[0].fingerprint if isinstance(events[0], IncidentOpened) else ""
    assert [e.aggregate_id for e in events] == [
        incident_id_for(fingerprint, 0),
        incident_id_for(fingerprint, 0),
        incident_id_for(fingerprint, 1),
        incident_id_for(fingerprint, 1),
    ]

    # every alert event delivered again, long after: the log does not change
    await caught_up(bus, "incidents-from-alerts", "ALERTS")
    restarted = await start_incidents(settings, CONFIG, start_service)  # no remembered chain
    for handler in (incidents.from_alerts, restarted.from_alerts):
        async for recorded in bus.replay("ALERTS"):
            assert isinstance(recorded.event, AlertEvent)
            await handler.handle(recorded.event, redelivery(recorded.event, recorded.seq))
    assert len(await stream_events(bus, "INCIDENTS")) == 4
