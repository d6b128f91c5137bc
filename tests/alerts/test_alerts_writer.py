"""The alert log's clashes against a real nats-server: another writer changed an alert
the book holds, and the evaluator or a command decides again on what the log says."""

from __future__ import annotations

from datetime import UTC, datetime

from services.alerts.api import AlertCommands
from services.alerts.domain import event_id_for
from services.alerts.handlers import EVALUATOR, SampleEvaluator
from services.alerts.rules import close_alerts_of
from services.alerts.watchdog import WatchdogRelay
from services.alerts.writer import AlertWriter
from shared import subjects
from shared.bus import EventBus
from shared.consumer import Delivery
from shared.events import (
    AlertAcknowledged,
    AlertEscalated,
    AlertEvent,
    AlertFired,
    AlertResolved,
    Sample,
    SamplesIngested,
)
from shared.ruleconfig import RuleConfig
from shared.streams import METRICS

RULE = RuleConfig(name="HighCPU", metric="cpu", warning=70, critical=90)
NOON = datetime(2030, 1, 1, 12, tzinfo=UTC)


class Service:
    """The evaluator and the commands over one writer, as the alerts service has them."""

    def __init__(self, bus: EventBus):
        self.bus = bus
        self.writer = AlertWriter(lambda: bus, lambda: NOON)
        self.evaluator = SampleEvaluator(
            self.writer, [RULE], WatchdogRelay(lambda: bus), clock=lambda: 1000.0
        )
        self.commands = AlertCommands(self.writer)

    async def sample(self, value: float) -> None:
        batch = SamplesIngested(
            aggregate_id="test",
            samples=[Sample(name="cpu", value=value, labels={"host": "db-1"})],
            received_at=1000.0,
        )
        seq = await self.bus.publish(subjects.samples("test"), batch)
        delivery = Delivery(METRICS.name, subjects.samples("test"), seq, 1, EVALUATOR.durable)
        await self.evaluator.handle(batch, delivery)


async def history(bus: EventBus, alert_id: str) -> list[AlertEvent]:
    return [
        r.event
        for r in await bus.read_subject(subjects.alert(alert_id))
        if isinstance(r.event, AlertEvent)
    ]


async def elsewhere(bus: EventBus, alert_id: str, change: type[AlertEvent]) -> None:
    """Another process appends ``change`` to the alert, after what the log holds."""
    records = await bus.read_subject(subjects.alert(alert_id))
    last = records[-1].event
    assert isinstance(last, AlertEvent)
    version = last.version + 1
    common = {
        "id": event_id_for(alert_id, version, "elsewhere"),
        "aggregate_id": alert_id,
        "version": version,
        "rule": last.rule,
        "fingerprint": last.fingerprint,
        "metric": last.metric,
        "labels": dict(last.labels),
    }
    event: AlertEvent
    if change is AlertResolved:
        event = AlertResolved(**common, severity=last.severity, by="bob", reason="manual")
    else:
        event = AlertEscalated(
            **common, severity="critical", previous_severity="warning", value=95, threshold=90
        )
    await bus.publish(subjects.alert(alert_id), event, records[-1].seq)


async def test_a_transition_on_an_alert_resolved_elsewhere_opens_a_new_episode(
    bus: EventBus,
) -> None:
    # given an open warning alert, resolved by another process behind the book's back
    service = Service(bus)
    await service.sample(75)
    (fired,) = service.writer.book.open.values()
    await elsewhere(bus, fired.alert_id, AlertResolved)

    # when a critical sample comes: its escalation clashes, and on the log the alert is over
    await service.sample(95)

    # then the decision made again fires a new critical episode, and the book holds it
    assert [type(e) for e in await history(bus, fired.alert_id)] == [AlertFired, AlertResolved]
    (episode,) = service.writer.book.open.values()
    assert episode.alert_id != fired.alert_id
    assert (episode.severity, episode.version) == ("critical", 1)
    (new,) = await history(bus, episode.alert_id)
    assert isinstance(new, AlertFired) and new.time == NOON  # stamped by the writer's clock


async def test_an_acknowledge_on_a_stale_book_is_decided_again_on_the_log(bus: EventBus) -> None:
    # given an alert the book holds at version 1, escalated elsewhere to version 2
    service = Service(bus)
    await service.sample(75)
    (fired,) = service.writer.book.open.values()
    await elsewhere(bus, fired.alert_id, AlertEscalated)

    # when it is acknowledged
    result = await service.commands.acknowledge({"alert_id": fired.alert_id, "by": "ann"})

    # then the acknowledgement follows the escalation, and the book holds both
    events = await history(bus, fired.alert_id)
    assert [type(e) for e in events] == [AlertFired, AlertEscalated, AlertAcknowledged]
    assert (result["version"], events[-1].version) == (3, 3)
    held = service.writer.book.get(fired.alert_id)
    assert held is not None and (held.status, held.severity) == ("acknowledged", "critical")


async def test_deleting_a_rule_closes_its_alerts_as_the_log_has_them(bus: EventBus) -> None:
    # given an open alert the book holds at version 1, escalated elsewhere
    service = Service(bus)
    await service.sample(75)
    (fired,) = service.writer.book.open.values()
    await elsewhere(bus, fired.alert_id, AlertEscalated)

    # when its rule is deleted
    closed = await close_alerts_of(service.writer, "HighCPU", "ann")

    # then it is closed after the escalation, once
    events = await history(bus, fired.alert_id)
    assert [type(e) for e in events] == [AlertFired, AlertEscalated, AlertResolved]
    assert closed == 1 and events[-1].version == 3 and not service.writer.book.open
    assert await close_alerts_of(service.writer, "HighCPU", "ann") == 0
