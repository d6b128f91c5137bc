"""The evaluator against a real nats-server: samples in on METRICS, transitions out on ALERTS."""

from __future__ import annotations

import time

from services.alerts.app import attach, build
from shared import subjects
from shared.bus import EventBus
from shared.config import RuleConfig, VigilConfig
from shared.consumer import Delivery
from shared.events import AlertEvent, Sample, SampleBlock, SamplesIngested, decode_event
from shared.runtime import ServiceRuntime
from shared.settings import Settings
from tests.conftest import RuntimeFactory
from tests.waiting import eventually

CONFIG = VigilConfig(
    rules=[
        RuleConfig(name="HighCPU", metric="cpu", warning=70, critical=90),
        RuleConfig(name="ProdLatency", metric="latency_ms", labels={"env": "prod"}, warning=500),
    ]
)
WEB = {"host": "web-1"}


def batch(
    *values: float, name: str = "cpu", labels: dict[str, str] | None = None
) -> SamplesIngested:
    return SamplesIngested(
        aggregate_id="test",
        samples=[Sample(name=name, value=v, labels=labels or WEB) for v in values],
        received_at=time.time(),
    )


async def alert_events(bus: EventBus) -> list[AlertEvent]:
    return [r.event async for r in bus.replay("ALERTS") if isinstance(r.event, AlertEvent)]


async def at_least(bus: EventBus, count: int) -> list[AlertEvent]:
    async def probe() -> list[AlertEvent]:
        events = await alert_events(bus)
        return events if len(events) >= count else []

    return await eventually(probe)


def summary(events: list[AlertEvent]) -> list[tuple[str, str, int]]:
    return [(e.type, e.severity, e.version) for e in events]


async def test_samples_fire_escalate_and_resolve_an_alert(
    bus: EventBus, settings: Settings, start_service: RuntimeFactory
) -> None:
    await start_service(build(settings, CONFIG))
    first = batch(75)
    await bus.publish(subjects.samples("test"), first)
    (fired,) = await at_least(bus, 1)
    assert (fired.type, fired.severity, fired.causation_id) == ("AlertFired", "warning", first.id)
    assert fired.correlation_id == first.correlation_id
    assert (fired.rule, fired.metric, fired.labels) == ("HighCPU", "cpu", WEB)

    await bus.publish(subjects.samples("test"), batch(95))
    await at_least(bus, 2)
    await bus.publish(subjects.samples("test"), batch(50))
    events = await at_least(bus, 3)
    assert summary(events) == [
        ("AlertFired", "warning", 1),
        ("AlertEscalated", "critical", 2),
        ("AlertResolved", "critical", 3),
    ]
    assert {e.aggregate_id for e in events} == {fired.aggregate_id}
    history = await bus.read_subject(subjects.alert(fired.aggregate_id))
    assert [r.event.id for r in history] == [e.id for e in events]


async def test_label_filters_and_unrelated_metrics(
    bus: EventBus, settings: Settings, start_service: RuntimeFactory
) -> None:
    await start_service(build(settings, CONFIG))
    await bus.publish(
        subjects.samples("test"), batch(900, name="latency_ms", labels={"env": "dev"})
    )
    await bus.publish(subjects.samples("test"), batch(900, name="disk", labels={"env": "prod"}))
    await bus.publish(
        subjects.samples("test"), batch(900, name="latency_ms", labels={"env": "prod"})
    )
    (fired,) = await at_least(bus, 1)
    assert (fired.rule, fired.labels) == ("ProdLatency", {"env": "prod"})
    # the consumer has moved past every batch, and nothing else fired
    assert await alert_events(bus) == [fired]


async def test_redelivered_batch_after_a_crash_records_each_transition_once(
    bus: EventBus, settings: Settings, start_service: RuntimeFactory
) -> None:
    crashed = await start_service(build(settings, CONFIG))
    # fire, escalate, recover, and a second episode — all in one batch
    seq = await bus.publish(subjects.samples("test"), batch(80, 95, 50, 80))
    before = await at_least(bus, 4)
    assert summary(before) == [
        ("AlertFired", "warning", 1),
        ("AlertEscalated", "critical", 2),
        ("AlertResolved", "critical", 3),
        ("AlertFired", "warning", 1),
    ]
    await crashed.stop()

    fresh = ServiceRuntime("alerts", settings)
    service = attach(fresh, CONFIG)
    await start_service(fresh)
    raw = await bus.js.get_msg("METRICS", seq)
    assert raw.data is not None
    delivery = Delivery(
        "METRICS", raw.subject or "", seq, deliveries=2, consumer="alerts-evaluator"
    )
    await service.evaluator.handle(decode_event(raw.data), delivery)
    await service.evaluator.handle(decode_event(raw.data), delivery)

    after = await alert_events(bus)
    assert [e.id for e in after] == [e.id for e in before]
    info = await bus.js.stream_info("ALERTS")
    assert info.state.messages == 4
    open_alert = service.writer.book.open[before[3].fingerprint]
    assert (open_alert.alert_id, open_alert.version) == (before[3].aggregate_id, 1)


async def test_open_alerts_survive_a_restart(
    bus: EventBus, settings: Settings, start_service: RuntimeFactory
) -> None:
    first = await start_service(build(settings, CONFIG))
    await bus.publish(subjects.samples("test"), batch(75))
    (fired,) = await at_least(bus, 1)
    await first.stop()

    await start_service(build(settings, CONFIG))
    await bus.publish(subjects.samples("test"), batch(78))  # still warning: nothing new
    await bus.publish(subjects.samples("test"), batch(97))
    events = await at_least(bus, 2)
    assert summary(events) == [("AlertFired", "warning", 1), ("AlertEscalated", "critical", 2)]
    assert events[1].aggregate_id == fired.aggregate_id


async def test_a_columnar_block_is_judged_sample_by_sample_like_a_json_batch(
    bus: EventBus, settings: Settings, start_service: RuntimeFactory
) -> None:
    await start_service(build(settings, CONFIG))
    now = time.time()
    samples = [
        Sample(name="unwatched", value=99.0, timestamp=now, labels=WEB),
        Sample(name="cpu", value=75.0, timestamp=now, labels=WEB),
        Sample(name="latency_ms", value=900.0, timestamp=now, labels={"env": "dev"}),
        Sample(name="cpu", value=95.0, timestamp=now, labels=WEB),
        Sample(name="latency_ms", value=900.0, timestamp=now, labels={"env": "prod"}),
    ]
    block = SampleBlock.of_samples(samples, now, aggregate_id="test")
    await bus.publish(subjects.samples("test"), block)
    events = await at_least(bus, 3)
    assert summary(events) == [
        ("AlertFired", "warning", 1),
        ("AlertEscalated", "critical", 2),
        ("AlertFired", "warning", 1),
    ]
    assert [(e.rule, e.labels) for e in events] == [
        ("HighCPU", WEB),
        ("HighCPU", WEB),
        ("ProdLatency", {"env": "prod"}),
    ]
    assert {e.causation_id for e in events} == {block.id}
