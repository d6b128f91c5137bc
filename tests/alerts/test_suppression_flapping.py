"""Flapping: one notice when a series flips too often, none for its flips, one when it
settles; and the whole suppression state rebuilt from the log equals the live one."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from services.alerts.app import attach
from shared.bus import EventBus
from shared.config import RuleConfig, VigilConfig
from shared.events import AlertFlapping, AlertSettled
from shared.runtime import ServiceRuntime
from shared.settings import Settings
from shared.suppressionconfig import FlappingConfig, InhibitRuleConfig
from tests.alerts.suppression_rig import T0, Rig, Span, kinds
from tests.conftest import RuntimeFactory

CPU = RuleConfig(name="HighCPU", metric="cpu", warning=70, hysteresis=1)
CONFIG = VigilConfig(
    rules=[CPU], flapping=FlappingConfig.model_validate({"changes": 3, "window": "10m"})
)


@pytest.fixture
def rig(bus: EventBus, settings: Settings, start_service: RuntimeFactory) -> Rig:
    return Rig(bus, settings, start_service)


async def test_a_flapping_series_is_announced_once_muted_then_settles(rig: Rig) -> None:
    service = await rig.start(CONFIG)
    # fire, resolve, fire: three changes, the limit
    await rig.samples(80, 10, 80)
    events = await rig.until(3)
    assert kinds(events) == [("AlertFired", []), ("AlertResolved", []), ("AlertFired", [])]
    # the fourth change, a minute later, is one too many
    await rig.move(60, service)
    await rig.samples(10)
    events = await rig.until(5)
    assert kinds(events[3:]) == [
        ("AlertResolved", ["flapping"]),
        ("AlertFlapping", ["flapping"]),
    ]
    flapping = events[4]
    assert isinstance(flapping, AlertFlapping)
    assert (flapping.aggregate_id, flapping.changes, flapping.window_s) == (
        events[3].aggregate_id,
        4,
        600.0,
    )
    # further flips are muted, and announced no more
    await rig.move(60, service)
    await rig.samples(80, 10, 80)
    events = await rig.until(8)
    assert kinds(events[5:]) == [
        ("AlertFired", ["flapping"]),
        ("AlertResolved", ["flapping"]),
        ("AlertFired", ["flapping"]),
    ]
    # nine minutes of firing is not yet a whole window
    await rig.move(9 * 60, service)
    await asyncio.sleep(0.1)
    assert len(await rig.events()) == 8
    # a whole window firing: it settles, firing, on its latest alert, and pages then
    await rig.move(60, service)
    events = await rig.until(9)
    settled = events[8]
    assert isinstance(settled, AlertSettled)
    assert (settled.aggregate_id, settled.status, settled.suppressed_by) == (
        events[7].aggregate_id,
        "firing",
        [],
    )
    assert service.suppressor.next_deadline() is None
    # and then it is an ordinary series again
    await rig.samples(10)
    events = await rig.until(10)
    assert kinds(events[9:]) == [("AlertResolved", [])]


async def test_a_series_that_settles_resolved_says_so(rig: Rig) -> None:
    service = await rig.start(CONFIG)
    await rig.samples(80, 10, 80, 10)
    events = await rig.until(5)
    assert events[4].type == "AlertFlapping"
    await rig.move(600, service)
    events = await rig.until(6)
    settled = events[5]
    assert isinstance(settled, AlertSettled)
    assert (settled.status, settled.aggregate_id) == ("resolved", events[3].aggregate_id)


async def test_changes_spread_wider_than_the_window_are_not_flapping(rig: Rig) -> None:
    service = await rig.start(CONFIG)
    for count, value in enumerate((80, 10, 80, 10, 80, 10), start=1):
        await rig.samples(value)
        await rig.until(count)
        await rig.move(301, service)  # at most two changes in any ten minutes
    await asyncio.sleep(0.1)
    events = await rig.events()
    assert [e.type for e in events] == ["AlertFired", "AlertResolved"] * 3
    assert all(e.suppressed_by == [] for e in events)


async def test_state_rebuilt_from_the_log_is_the_live_state_and_a_restart_pages_nothing_again(
    rig: Rig, settings: Settings
) -> None:
    host_down = RuleConfig(
        name="HostDown", metric="host_up", direction="below", critical=0, hysteresis=0.5
    )
    config = CONFIG.model_copy(
        update={
            "rules": [CPU, host_down],
            "inhibit_rules": [
                InhibitRuleConfig(
                    source_matchers=['alertname="HostDown"'],
                    target_matchers=['alertname="HighCPU"'],
                    equal=["host"],
                )
            ],
        }
    )
    await rig.book.add(Span("s-1", {"host": "web-3"}, T0, T0 + timedelta(hours=1)))
    live = await rig.start(config)
    await rig.samples(0, name="host_up", host="web-1")
    await rig.samples(80, host="web-1")  # inhibited
    await rig.samples(80, 10, 80, 10, 80, host="web-2")  # flapping
    await rig.samples(80, host="web-3")  # silenced
    await rig.samples(80, host="web-4")  # pages
    count = len(await rig.until(10))
    await asyncio.sleep(0.2)
    assert len(await rig.events()) == count

    # a second suppressor over the same log knows the same
    rebuilt = attach(ServiceRuntime("alerts", settings), config, clock=rig.clock.now)
    rebuilt.suppressor.add_source(rig.book)
    rebuilt.writer._bus = lambda: rig.bus
    await rebuilt.writer.load()
    assert rebuilt.suppressor.snapshot() == live.suppressor.snapshot()
    assert rebuilt.suppressor.snapshot()["flapping"]
    assert len(rebuilt.suppressor.snapshot()["stamps"]) == 5
    # and reconciling it appends nothing: nothing is announced or changed twice
    async with rebuilt.writer.lock:
        assert await rebuilt.suppressor.reconcile() == 0
    assert len(await rig.events()) == count
