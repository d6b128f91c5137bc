"""Absence: a series seen before and silent for ``absent_for`` fires 'no data' at its
deadline (a heap of deadlines, not a poll), resolves when data returns, and survives a
restart without firing twice. Deadlines are driven by an injected clock, and once by the
real one against a real nats-server."""

from __future__ import annotations

import asyncio
import time

from services.alerts.absence import AbsenceClock, LastSeen
from services.alerts.app import AlertsService, attach
from services.alerts.domain import SampleOrigin
from services.alerts.handlers import EVALUATOR
from services.alerts.replay import RuleReplay
from shared import subjects
from shared.bus import EventBus
from shared.config import VigilConfig
from shared.consumer import Delivery
from shared.events import AlertEvent, AlertFired, AlertResolved, Sample, SamplesIngested
from shared.ruleconfig import RuleConfig
from shared.runtime import ServiceRuntime
from shared.settings import Settings
from tests.conftest import RuntimeFactory
from tests.waiting import caught_up, eventually

SILENT = RuleConfig.model_validate(
    {
        "name": "AgentSilent",
        "metric": "up",
        "absent_for": "5m",
        "severity": "warning",
        "annotations": {"summary": "no data from {{ labels.host }} for {{ value }} s"},
    }
)


def up(**labels: str) -> list[Sample]:
    return [Sample(name="up", value=1, labels=labels)]


def seen(fp: str, at: float) -> LastSeen:
    return LastSeen("AgentSilent", fp, {}, at, SampleOrigin(1, 0, "b", "c"))


def test_a_series_is_due_at_its_deadline_and_not_a_moment_before() -> None:
    clock = AbsenceClock()
    clock.use({"AgentSilent": 300}, set())
    clock.observe(seen("a", 1000))
    assert clock.next_deadline() == 1300
    assert clock.due(1299.999) == []
    (due,) = clock.due(1300)
    assert due.fingerprint == "a"
    assert clock.due(5000) == []  # fired once; forgotten until seen again


def test_a_series_seen_again_moves_its_deadline_with_one_heap_entry() -> None:
    clock = AbsenceClock()
    clock.use({"AgentSilent": 300}, set())
    for at in range(1000, 1300, 10):
        clock.observe(seen("a", at))
    assert len(clock._heap) == 1  # one entry per series, whatever the sample rate
    assert clock.due(1300) == []  # the old deadline passes: pushed back, not fired
    assert clock.next_deadline() == 1290 + 300
    assert [d.at for d in clock.due(1590)] == [1290]


def test_an_older_sample_does_not_move_a_series_back() -> None:
    clock = AbsenceClock()
    clock.use({"AgentSilent": 300}, set())
    clock.observe(seen("a", 2000))
    clock.observe(seen("a", 1000))  # a replayed batch
    assert clock.due(1300) == []
    assert [d.at for d in clock.due(2300)] == [2000]


async def test_silence_fires_no_data_at_the_deadline_and_data_resolves_it() -> None:
    # given two hosts reporting every 10 s
    replay = RuleReplay([SILENT], start=0)
    for at in range(0, 60, 10):
        await replay.batch(at, up(host="a") + up(host="b"))
    # when host a stops reporting after t=50 and b keeps on
    for at in range(60, 400, 10):
        await replay.batch(at, up(host="b"))
    # then a is called absent 5 minutes after its last sample, once
    (fired,) = replay.changes()
    assert (fired.at, fired.kind, fired.reason) == (350, "fired", "absent")
    assert (fired.labels, fired.severity, fired.value) == ({"host": "a"}, "warning", 300)
    assert fired.annotations == {"summary": "no data from a for 300.0 s"}
    # when a reports again
    await replay.batch(500, up(host="a"))
    _, resolved = replay.changes()
    assert (resolved.at, resolved.kind, resolved.reason) == (500, "resolved", "recovered")


async def test_the_selector_and_absent_by_say_what_must_keep_reporting() -> None:
    # given one rule per host (whatever its other labels), for prod only
    per_host = SILENT.model_copy(update={"absent_by": ["host"], "matchers": ["env=prod"]})
    replay = RuleReplay([per_host], start=0)
    await replay.batch(0, up(host="a", env="prod", job="x") + up(host="b", env="dev"))
    # when the job label of a changes (a new series, the same host)
    await replay.batch(200, up(host="a", env="prod", job="y"))
    await replay.advance(499)
    # then the host still reports: nothing; and b (dev) is not watched at all
    assert replay.changes() == []
    await replay.advance(500)
    (fired,) = replay.changes()
    assert (fired.at, fired.labels) == (500, {"host": "a"})

    # given [] : any series of the selector keeps the whole selector alive
    anyone = SILENT.model_copy(update={"absent_by": []})
    replay = RuleReplay([anyone], start=0)
    await replay.batch(0, up(host="a"))
    await replay.batch(200, up(host="b"))
    await replay.advance(499)
    assert replay.changes() == []
    await replay.advance(501)
    assert [(c.at, c.labels) for c in replay.changes()] == [(500, {})]


async def test_a_redelivered_old_sample_does_not_resolve_no_data() -> None:
    replay = RuleReplay([SILENT], start=0)
    await replay.batch(0, up(host="a"))
    await replay.advance(300)
    (fired,) = replay.changes()
    # the batch that was the series' last sample is delivered again (same stream seq)
    again = SamplesIngested(aggregate_id="rules-test", samples=up(host="a"), received_at=0)
    delivery = Delivery("METRICS", subjects.samples("rules-test"), 1, 2, EVALUATOR.durable)
    await replay.evaluator.handle(again, delivery)
    assert replay.changes() == [fired]


# --- against a real nats-server ----------------------------------------------------------

FAST = RuleConfig.model_validate({"name": "AgentSilent", "metric": "up", "absent_for": "1s"})


async def send_up(bus: EventBus, host: str, at: float | None = None) -> SamplesIngested:
    batch = SamplesIngested(
        aggregate_id="agent",
        samples=up(host=host),
        received_at=time.time() if at is None else at,
    )
    await bus.publish(subjects.samples("agent"), batch)
    return batch


async def alert_events(bus: EventBus) -> list[AlertEvent]:
    return [r.event async for r in bus.replay("ALERTS") if isinstance(r.event, AlertEvent)]


async def start(
    settings: Settings, start_service: RuntimeFactory, rule: RuleConfig
) -> tuple[ServiceRuntime, AlertsService]:
    runtime = ServiceRuntime("alerts", settings)
    service = attach(runtime, VigilConfig(rules=[rule]))
    await start_service(runtime)
    return runtime, service


async def test_a_silent_series_fires_within_a_second_of_its_deadline_and_data_resolves_it(
    bus: EventBus, settings: Settings, start_service: RuntimeFactory
) -> None:
    await start(settings, start_service, FAST)
    last = await send_up(bus, "web-1")

    async def fired() -> list[AlertEvent]:
        return await alert_events(bus)

    (event,) = await eventually(fired, what="no data to fire")
    assert isinstance(event, AlertFired) and event.reason == "absent"
    deadline = last.received_at + 1.0
    late = event.time.timestamp() - deadline
    assert 0 <= late < 1.0, late
    assert event.causation_id == last.id  # the last sample seen is its cause
    assert event.labels == {"host": "web-1"}

    await send_up(bus, "web-1")

    async def resolved() -> list[AlertEvent]:
        found = await alert_events(bus)
        return found if len(found) == 2 else []

    _, back = await eventually(resolved, what="returning data to resolve it")
    assert isinstance(back, AlertResolved) and back.aggregate_id == event.aggregate_id


async def test_last_seen_times_survive_a_restart_and_an_open_alert_is_not_fired_twice(
    bus: EventBus, settings: Settings, start_service: RuntimeFactory
) -> None:
    slow = FAST.model_copy(update={"absent_for": 3.0})
    first, _ = await start(settings, start_service, slow)
    await send_up(bus, "web-1")  # its deadline passes while the service is down
    await send_up(bus, "web-2")
    await caught_up(bus, "alerts-evaluator", "METRICS")
    await first.stop()
    await asyncio.sleep(3.2)

    second, service = await start(settings, start_service, slow)

    async def both() -> list[AlertEvent]:
        found = await alert_events(bus)
        return found if len(found) >= 2 else []

    fired = await eventually(both, what="both silent hosts to fire after the restart")
    assert sorted(e.labels["host"] for e in fired) == ["web-1", "web-2"]
    await service.commands.acknowledge({"alert_id": fired[0].aggregate_id, "by": "sam"})
    await second.stop()

    # a third start replays the same samples: the alerts are open, nothing fires again
    _, third = await start(settings, start_service, slow)
    await asyncio.sleep(0.5)
    assert [e.type for e in await alert_events(bus)] == [
        "AlertFired",
        "AlertFired",
        "AlertAcknowledged",
    ]
    acknowledged = third.writer.book.get(fired[0].aggregate_id)
    assert acknowledged is not None
    assert (acknowledged.status, acknowledged.version) == ("acknowledged", 2)
    assert len(third.writer.book.open) == 2
