"""``for:`` holds, measured by arrival, and across a restart of the alerts service, against a
real nats-server. A batch's ``received_at`` stands for the moment it arrived."""

from __future__ import annotations

import time

from services.alerts.app import AlertsService, attach
from shared import subjects
from shared.bus import EventBus
from shared.config import RuleConfig, VigilConfig
from shared.events import AlertEvent, Sample, SamplesIngested
from shared.runtime import ServiceRuntime
from shared.settings import Settings
from tests.conftest import RuntimeFactory
from tests.waiting import caught_up, eventually

CONFIG = VigilConfig(
    rules=[
        RuleConfig.model_validate({"name": "HotCPU", "metric": "cpu", "critical": 90, "for": 60})
    ]
)
WEB = {"host": "web-1"}


async def send(bus: EventBus, value: float, at: float) -> None:
    """A sample that arrived at ``at``."""
    batch = SamplesIngested(
        aggregate_id="test",
        samples=[Sample(name="cpu", value=value, timestamp=at, labels=WEB)],
        received_at=at,
    )
    await bus.publish(subjects.samples("test"), batch)


async def evaluated(bus: EventBus) -> None:
    await caught_up(bus, "alerts-evaluator", "METRICS")


async def alert_events(bus: EventBus) -> list[AlertEvent]:
    return [r.event async for r in bus.replay("ALERTS") if isinstance(r.event, AlertEvent)]


async def start(
    settings: Settings, start_service: RuntimeFactory
) -> tuple[ServiceRuntime, AlertsService]:
    runtime = ServiceRuntime("alerts", settings)
    service = attach(runtime, CONFIG)
    await start_service(runtime)
    return runtime, service


async def test_a_hold_keeps_counting_across_a_restart(
    bus: EventBus, settings: Settings, start_service: RuntimeFactory
) -> None:
    now = time.time()
    first, _ = await start(settings, start_service)
    await send(bus, 95, now - 50)
    await evaluated(bus)
    await first.stop()

    _, service = await start(settings, start_service)
    assert service.writer.book.pending  # the hold that began at now - 50 is back
    await send(bus, 96, now + 15)  # held 65 s in all: past the rule's 60 s

    async def fired() -> list[AlertEvent]:
        return await alert_events(bus)

    (event,) = await eventually(fired, what="the held alert to fire")
    assert (event.type, event.severity) == ("AlertFired", "critical")


async def test_a_hold_broken_before_the_restart_starts_again(
    bus: EventBus, settings: Settings, start_service: RuntimeFactory
) -> None:
    now = time.time()
    first, _ = await start(settings, start_service)
    await send(bus, 95, now - 50)
    await send(bus, 10, now - 40)  # the value fell back: the hold is over
    await evaluated(bus)
    await first.stop()

    await start(settings, start_service)
    await send(bus, 95, now + 15)
    await evaluated(bus)
    assert await alert_events(bus) == []
    await send(bus, 95, now + 80)  # 65 s after the new hold began
    await evaluated(bus)
    assert [e.type for e in await alert_events(bus)] == ["AlertFired"]


async def test_a_resolve_by_hand_ends_the_hold_for_good(
    bus: EventBus, settings: Settings, start_service: RuntimeFactory
) -> None:
    now = time.time()
    first, service = await start(settings, start_service)
    await send(bus, 95, now - 100)
    await send(bus, 95, now - 30)  # fires: held 70 s
    await send(bus, 95, now - 20)  # after the alert fired, before it was resolved
    await evaluated(bus)
    (fired,) = await alert_events(bus)
    await service.commands.resolve({"alert_id": fired.aggregate_id, "by": "sam"})
    await first.stop()

    await start(settings, start_service)
    await send(bus, 95, now + 50)  # 70 s after the last sample before the resolve
    await evaluated(bus)
    assert [e.type for e in await alert_events(bus)] == ["AlertFired", "AlertResolved"]


async def test_timestamps_set_back_by_a_client_do_not_shorten_a_hold(
    bus: EventBus, settings: Settings, start_service: RuntimeFactory
) -> None:
    now = time.time()
    await start(settings, start_service)
    stamped_back = SamplesIngested(
        aggregate_id="test",
        samples=[
            Sample(name="cpu", value=95, timestamp=now - 400, labels=WEB),
            Sample(name="cpu", value=96, timestamp=now - 200, labels=WEB),
            Sample(name="cpu", value=97, timestamp=now, labels=WEB),
        ],
        received_at=now,
    )
    await bus.publish(subjects.samples("test"), stamped_back)
    await send(bus, 98, now + 30)  # stamped 430 s after the first sample, 30 s after arrival
    await evaluated(bus)
    assert await alert_events(bus) == []  # the rule's 60 s have not passed since arrival

    await send(bus, 99, now + 61)
    await evaluated(bus)
    assert [e.type for e in await alert_events(bus)] == ["AlertFired"]
