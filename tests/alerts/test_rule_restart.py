"""What rules keep per series (windows, ratio counters) outlives a restart of the alerts
service and a change of the rule that leaves its series and window alone."""

from __future__ import annotations

import time
from typing import Any

from services.alerts.app import attach
from services.alerts.replay import RuleReplay
from shared import subjects
from shared.bus import EventBus
from shared.config import VigilConfig
from shared.events import AlertFired, Sample, SamplesIngested
from shared.ruleconfig import RuleConfig
from shared.runtime import ServiceRuntime
from shared.settings import Settings
from tests.conftest import RuntimeFactory
from tests.waiting import caught_up, eventually

GROWTH: dict[str, Any] = {
    "name": "QueueGrowing",
    "metric": "queue_depth",
    "function": "delta",
    "window": "10m",
    "warning": 50,
}
ERRORS: dict[str, Any] = {
    "name": "HighErrorRate",
    "ratio": {"numerator": "errors", "denominator": "requests", "over": "10m", "scale": 100},
    "warning": 5,
}
CONFIG = VigilConfig(rules=[RuleConfig.model_validate(GROWTH), RuleConfig.model_validate(ERRORS)])


async def send(bus: EventBus, at: float, depth: float, errors: float, requests: float) -> None:
    samples = [
        Sample(name="queue_depth", value=depth, labels={"queue": "jobs"}),
        Sample(name="errors", value=errors, labels={"service": "api"}),
        Sample(name="requests", value=requests, labels={"service": "api"}),
    ]
    batch = SamplesIngested(aggregate_id="app", samples=samples, received_at=at)
    await bus.publish(subjects.samples("app"), batch)


async def test_windows_and_ratio_counters_survive_a_restart(
    bus: EventBus, settings: Settings, start_service: RuntimeFactory
) -> None:
    now = time.time()
    first = ServiceRuntime("alerts", settings)
    attach(first, CONFIG)
    await start_service(first)
    await send(bus, now - 120, depth=0, errors=0, requests=0)
    await caught_up(bus, "alerts-evaluator", "METRICS")
    await first.stop()

    again = ServiceRuntime("alerts", settings)
    attach(again, CONFIG)
    await start_service(again)
    # a single sample after the restart: only with the one before it is there a change
    await send(bus, now, depth=80, errors=10, requests=100)

    async def fired() -> list[AlertFired]:
        found = [r.event async for r in bus.replay("ALERTS") if isinstance(r.event, AlertFired)]
        return found if len(found) == 2 else []

    alerts = await eventually(fired, what="both rules to fire from before and after")
    assert {(a.rule, a.value) for a in alerts} == {("QueueGrowing", 80), ("HighErrorRate", 10)}


async def test_a_change_of_threshold_keeps_the_windows_a_change_of_window_does_not() -> None:
    growth = RuleConfig.model_validate(GROWTH)
    replay = RuleReplay([growth])
    await replay.batch(0, [Sample(name="queue_depth", value=0)])
    await replay.evaluator.use_rules([growth.model_copy(update={"warning": 30})])
    await replay.batch(60, [Sample(name="queue_depth", value=40)])
    (fired,) = replay.changes()
    assert (fired.at, fired.value) == (60, 40)

    replay = RuleReplay([growth])
    await replay.batch(0, [Sample(name="queue_depth", value=0)])
    await replay.evaluator.use_rules([growth.model_copy(update={"window": 1200.0})])
    await replay.batch(60, [Sample(name="queue_depth", value=80)])
    assert replay.changes() == []  # a new window: one point, no change yet
