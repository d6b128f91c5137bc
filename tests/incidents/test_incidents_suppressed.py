"""A suppressed critical alert opens no incident; once it no longer is, and still fires,
it opens one then."""

from __future__ import annotations

from datetime import timedelta

from services.incidents.app import attach
from services.incidents.handlers import incident_id_for
from shared.bus import EventBus
from shared.config import RuleConfig, VigilConfig
from shared.events import IncidentOpened
from shared.runtime import ServiceRuntime
from shared.settings import Settings
from tests.alerts.suppression_rig import T0, Rig, Span
from tests.conftest import RuntimeFactory
from tests.waiting import caught_up, eventually

CONFIG = VigilConfig(rules=[RuleConfig(name="HighCPU", metric="cpu", warning=70, critical=90)])


async def opened(bus: EventBus) -> list[IncidentOpened]:
    return [r.event async for r in bus.replay("INCIDENTS") if isinstance(r.event, IncidentOpened)]


async def test_a_silenced_critical_alert_opens_its_incident_only_when_unsilenced(
    bus: EventBus, settings: Settings, start_service: RuntimeFactory
) -> None:
    rig = Rig(bus, settings, start_service)
    await rig.book.add(Span("s-1", {"host": "web-1"}, T0, T0 + timedelta(hours=1)))
    alerts = await rig.start(CONFIG)
    await start_service(_incidents(settings))
    # when web-1 (silenced) goes critical, and escalates, and web-2 goes critical
    await rig.samples(80, 95, host="web-1")
    await rig.samples(96, host="web-2")
    fired = await rig.until(3)
    await caught_up(bus, "incidents-from-alerts", "ALERTS")
    # then only web-2 has an incident
    (first,) = await opened(bus)
    assert first.alert_id == fired[2].aggregate_id
    # when the silence ends with web-1 still critical, its incident opens
    await rig.move(3600, alerts)

    async def two() -> list[IncidentOpened]:
        found = await opened(bus)
        return found if len(found) == 2 else []

    second = (await eventually(two, what="a second incident"))[1]
    assert second.alert_id == fired[0].aggregate_id
    assert second.aggregate_id == incident_id_for(fired[0].fingerprint, 0)
    assert "no longer suppressed" in second.description


def _incidents(settings: Settings) -> ServiceRuntime:
    runtime = ServiceRuntime("incidents", settings)
    attach(runtime, CONFIG)
    return runtime
