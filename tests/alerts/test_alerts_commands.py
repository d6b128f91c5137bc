"""Acknowledge and resolve through request/reply, as the gateway sends them."""

from __future__ import annotations

import time

import pytest

from services.alerts.app import build
from shared import subjects
from shared.bus import EventBus
from shared.commands import ACKNOWLEDGE_ALERT, RESOLVE_ALERT
from shared.config import RuleConfig, VigilConfig
from shared.errors import InvalidInput, InvalidTransition, NotFound
from shared.events import (
    AlertAcknowledged,
    AlertEvent,
    AlertFired,
    AlertResolved,
    Sample,
    SamplesIngested,
)
from shared.settings import Settings
from tests.conftest import RuntimeFactory
from tests.waiting import eventually

CONFIG = VigilConfig(rules=[RuleConfig(name="HighCPU", metric="cpu", warning=70, critical=90)])


async def send(bus: EventBus, value: float) -> None:
    sample = Sample(name="cpu", value=value, labels={"host": "db-1"})
    await bus.publish(
        subjects.samples("test"),
        SamplesIngested(aggregate_id="test", samples=[sample], received_at=time.time()),
    )


async def fired_alerts(bus: EventBus, count: int) -> list[AlertFired]:
    async def probe() -> list[AlertFired]:
        found = [r.event async for r in bus.replay("ALERTS") if isinstance(r.event, AlertFired)]
        return found if len(found) >= count else []

    return await eventually(probe)


async def test_acknowledge_and_resolve_an_alert(
    bus: EventBus, settings: Settings, start_service: RuntimeFactory
) -> None:
    await start_service(build(settings, CONFIG))
    await send(bus, 85)
    (fired,) = await fired_alerts(bus, 1)
    alert_id = fired.aggregate_id

    acked = await bus.request(
        ACKNOWLEDGE_ALERT, {"alert_id": alert_id, "by": "ann", "comment": "looking"}
    )
    assert (acked["aggregate_id"], acked["version"], acked["stream"]) == (alert_id, 2, "ALERTS")
    again = await bus.request(ACKNOWLEDGE_ALERT, {"alert_id": alert_id, "by": "bob"})
    assert again == acked  # a no-op answers the current version and sequence

    resolved = await bus.request(RESOLVE_ALERT, {"alert_id": alert_id, "by": "ann"})
    assert (resolved["version"], resolved["seq"] > acked["seq"]) == (3, True)

    history = [r.event for r in await bus.read_subject(subjects.alert(alert_id))]
    assert [type(e) for e in history] == [AlertFired, AlertAcknowledged, AlertResolved]
    ack, manual = history[1], history[2]
    assert isinstance(ack, AlertAcknowledged) and (ack.by, ack.comment) == ("ann", "looking")
    assert isinstance(manual, AlertResolved) and (manual.reason, manual.by) == ("manual", "ann")
    assert all(isinstance(e, AlertEvent) and e.fingerprint == fired.fingerprint for e in history)

    with pytest.raises(InvalidTransition):
        await bus.request(RESOLVE_ALERT, {"alert_id": alert_id})
    with pytest.raises(InvalidTransition):
        await bus.request(ACKNOWLEDGE_ALERT, {"alert_id": alert_id})

    # the value is still high: the next sample opens a new episode
    await send(bus, 86)
    second = (await fired_alerts(bus, 2))[1]
    assert second.aggregate_id != alert_id
    assert (second.fingerprint, second.severity) == (fired.fingerprint, "warning")


async def test_unknown_alert_and_bad_bodies_are_refused(
    bus: EventBus, settings: Settings, start_service: RuntimeFactory
) -> None:
    await start_service(build(settings, CONFIG))
    with pytest.raises(NotFound):
        await bus.request(ACKNOWLEDGE_ALERT, {"alert_id": "no-such-alert"})
    with pytest.raises(NotFound):
        await bus.request(RESOLVE_ALERT, {"alert_id": "a.b.>"})
    with pytest.raises(InvalidInput) as missing:
        await bus.request(ACKNOWLEDGE_ALERT, {"by": "ann"})
    assert missing.value.field == "alert_id"
