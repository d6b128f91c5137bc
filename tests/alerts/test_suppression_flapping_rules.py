"""A rule's own flapping setting: its series are judged by it, the others by the
top-level one; the state rebuilt from the log is still the live one."""

from __future__ import annotations

import asyncio

import pytest

from services.alerts.app import attach
from shared.bus import EventBus
from shared.commands import CREATE_RULE
from shared.config import RuleConfig, VigilConfig
from shared.events import AlertEvent, AlertFlapping, AlertSettled
from shared.runtime import ServiceRuntime
from shared.settings import Settings
from shared.suppressionconfig import FlappingConfig
from tests.alerts.suppression_rig import Rig, kinds
from tests.conftest import RuntimeFactory

CPU = RuleConfig(name="HighCPU", metric="cpu", warning=70, hysteresis=1)
GLOBAL = FlappingConfig.model_validate({"changes": 3, "window": "10m"})


def rule(name: str, metric: str, flapping: dict[str, object]) -> RuleConfig:
    return RuleConfig.model_validate(
        {"name": name, "metric": metric, "warning": 70, "hysteresis": 1, "flapping": flapping}
    )


def of_rule(events: list[AlertEvent], name: str) -> list[AlertEvent]:
    return [e for e in events if e.rule == name]


@pytest.fixture
def rig(bus: EventBus, settings: Settings, start_service: RuntimeFactory) -> Rig:
    return Rig(bus, settings, start_service)


async def test_a_rule_with_flapping_disabled_never_flaps_while_another_rule_does(
    rig: Rig,
) -> None:
    quiet = rule("DiskBusy", "disk_busy", {"enabled": False})
    await rig.start(VigilConfig(rules=[CPU, quiet], flapping=GLOBAL))
    # the same four flips on both: one too many for the top-level limit of three
    await rig.samples(80, 10, 80, 10)
    await rig.samples(80, 10, 80, 10, name="disk_busy")
    events = await rig.until(9)
    await asyncio.sleep(0.2)  # nothing more comes for the disk
    events = await rig.events()
    assert kinds(of_rule(events, "HighCPU"))[3:] == [
        ("AlertResolved", ["flapping"]),
        ("AlertFlapping", ["flapping"]),
    ]
    assert kinds(of_rule(events, "DiskBusy")) == [
        ("AlertFired", []),
        ("AlertResolved", []),
        ("AlertFired", []),
        ("AlertResolved", []),
    ]


async def test_a_rule_with_a_lower_limit_flaps_sooner_and_settles_by_its_own_window(
    rig: Rig, settings: Settings
) -> None:
    jumpy = rule("Jumpy", "jumpy", {"changes": 1, "window": "5m"})
    config = VigilConfig(rules=[CPU, jumpy], flapping=GLOBAL)
    live = await rig.start(config)
    # two changes each: within the top-level limit, one too many for Jumpy's
    await rig.samples(80, 10)
    await rig.samples(80, 10, name="jumpy")
    events = await rig.until(5)
    assert kinds(of_rule(events, "HighCPU")) == [("AlertFired", []), ("AlertResolved", [])]
    assert kinds(of_rule(events, "Jumpy")) == [
        ("AlertFired", []),
        ("AlertResolved", ["flapping"]),
        ("AlertFlapping", ["flapping"]),
    ]
    flapping = of_rule(events, "Jumpy")[2]
    assert isinstance(flapping, AlertFlapping)
    assert (flapping.changes, flapping.window_s) == (2, 300.0)
    assert "more than 1 changes within 5m" in flapping.suppressed_by[0].detail

    # a suppressor rebuilt from the same log judges by the same settings
    rebuilt = attach(ServiceRuntime("alerts", settings), config, clock=rig.clock.now)
    rebuilt.writer._bus = lambda: rig.bus
    await rebuilt.writer.load()
    assert rebuilt.suppressor.snapshot() == live.suppressor.snapshot()

    # five quiet minutes are Jumpy's whole window (the top-level one is ten)
    await rig.move(300, live)
    events = await rig.until(6)
    settled = events[5]
    assert isinstance(settled, AlertSettled)
    assert (settled.rule, settled.status) == ("Jumpy", "resolved")


async def test_a_rule_made_through_the_api_keeps_its_setting_when_the_log_is_read_again(
    rig: Rig, bus: EventBus, settings: Settings
) -> None:
    config = VigilConfig(rules=[CPU], flapping=GLOBAL)
    live = await rig.start(config)
    made = {"rule": rule("Jumpy", "jumpy", {"changes": 1}).model_dump(mode="json"), "by": "ann"}
    await bus.request(CREATE_RULE, made)
    await rig.samples(80, 10, name="jumpy")
    events = await rig.until(3)
    assert kinds(events)[2] == ("AlertFlapping", ["flapping"])

    # a restart: the API's rules are in place before the log is read
    runtime = ServiceRuntime("alerts", settings)
    rebuilt = attach(runtime, config, clock=rig.clock.now)
    runtime._bus = bus
    for hook in runtime._start_hooks:
        await hook()
    assert rebuilt.suppressor.snapshot() == live.suppressor.snapshot()
    assert rebuilt.suppressor.flaps.is_flapping(events[0].fingerprint)
