"""A suppressed alert pages nobody, and pages once when it no longer is: the alerts service
and the notifier on one nats-server, a real webhook receiver, one clock for both."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from services.notifier.app import build as build_notifier
from shared.bus import EventBus
from shared.config import VigilConfig
from shared.events.paging import EscalationEvent, EscalationStarted, EscalationStepFired
from shared.settings import Settings
from shared.streams import PAGING
from shared.suppressionconfig import FlappingConfig
from tests.alerts.suppression_rig import Clock, Rig, Span
from tests.conftest import RuntimeFactory
from tests.notifier.conftest import ReceiverFactory, WebhookReceiver
from tests.waiting import caught_up, eventually

HOUR = timedelta(hours=1)


def config(hook: str, pager: str) -> VigilConfig:
    return VigilConfig.model_validate(
        {
            "rules": [
                {"name": "HighCPU", "metric": "cpu", "warning": 70, "critical": 90},
            ],
            "channels": [
                {"name": "hook", "type": "webhook", "url": hook},
                {"name": "pager", "type": "webhook", "url": pager},
            ],
            "route": {"channels": ["hook"], "escalation_policy": "ops"},
            "escalation_policies": [
                {
                    "name": "ops",
                    "steps": [
                        {"delay": 0, "notify": [{"channel": "pager"}]},
                        {"delay": "30m", "notify": [{"channel": "pager"}]},
                    ],
                }
            ],
            "flapping": {"changes": 3, "window": "10m"},
        }
    )


@pytest.fixture
def rig(bus: EventBus, settings: Settings, start_service: RuntimeFactory) -> Rig:
    # the notifier's escalation steps and the alert events share one clock, near real time
    return Rig(bus, settings, start_service, Clock(datetime.now(UTC).replace(microsecond=0)))


def seen(receiver: WebhookReceiver) -> list[tuple[str, str, str]]:
    """(event, host, status) of every request the receiver got."""
    found = []
    for request in receiver.requests:
        body: dict[str, Any] = request.json()
        alert = body.get("alert") or {}
        found.append((body["event"], alert.get("labels", {}).get("host", ""), alert.get("status")))
    return found


async def escalations(bus: EventBus) -> list[EscalationEvent]:
    return [r.event async for r in bus.replay(PAGING.name) if isinstance(r.event, EscalationEvent)]


async def requests(receiver: WebhookReceiver, count: int) -> list[tuple[str, str, str]]:
    def probe() -> list[tuple[str, str, str]]:
        return seen(receiver) if len(receiver.requests) >= count else []

    found: list[tuple[str, str, str]] = await eventually(
        probe, within_s=5.0, what=f"{count} requests"
    )
    return found


async def quiet(rig: Rig, *receivers: WebhookReceiver) -> None:
    """Nothing more arrives: the alert log has been delivered and nothing new follows."""
    counts = [len(r.requests) for r in receivers]
    await asyncio.sleep(0.5)
    assert [len(r.requests) for r in receivers] == counts


async def test_a_silenced_alert_pages_nobody_then_once_when_unsilenced(
    rig: Rig, receiver_factory: ReceiverFactory
) -> None:
    hook, pager = await receiver_factory(), await receiver_factory()
    vigil = config(hook.url, pager.url)
    now = rig.clock.now()
    await rig.book.add(Span("s-1", {"host": "web-1"}, now - HOUR, now + HOUR, "deploy"))
    await rig.start(vigil)
    await rig.start_service(build_notifier(rig.settings, vigil, clock=rig.clock.now))

    # when web-1 (silenced) and web-2 go critical
    await rig.samples(95, host="web-1")
    await rig.until(1)
    await rig.samples(95, host="web-2")
    # then only web-2 is notified and paged
    assert await requests(hook, 1) == [("AlertFired", "web-2", "firing")]
    await requests(pager, 1)
    await quiet(rig, hook, pager)
    started = [e for e in await escalations(rig.bus) if isinstance(e, EscalationStarted)]
    assert [e.labels["host"] for e in started] == ["web-2"]

    # when the silence is expired, web-1 pages once, as firing now, and escalates
    await rig.book.remove("s-1")
    assert (await requests(hook, 2))[1] == ("AlertSuppressionChanged", "web-1", "firing")
    await requests(pager, 2)
    await quiet(rig, hook, pager)
    assert len(hook.requests) == 2 and len(pager.requests) == 2

    # when it is silenced again, its escalation stops as suppressed; nothing is sent
    await rig.book.add(Span("s-2", {"host": "web-1"}, now - HOUR, now + HOUR, "again"))

    async def stopped() -> list[str]:
        return [
            getattr(e, "reason", "")
            for e in await escalations(rig.bus)
            if e.type == "EscalationStopped"
        ]

    assert await eventually(stopped, what="escalation stopped") == ["suppressed"]
    await quiet(rig, hook, pager)
    assert len(hook.requests) == 2

    # unsilenced once more: one more page, a new escalation generation
    await rig.book.remove("s-2")
    await requests(hook, 3)
    await requests(pager, 3)
    await quiet(rig, hook, pager)
    fired = [e for e in await escalations(rig.bus) if isinstance(e, EscalationStepFired)]
    web1 = [(e.generation, e.step) for e in fired if e.labels["host"] == "web-1"]
    assert web1 == [(0, 0), (1, 0)]

    # it recovers: the resolve is notified and the escalation stops
    await rig.samples(10, host="web-1")
    assert (await requests(hook, 4))[3] == ("AlertResolved", "web-1", "resolved")

    async def twice() -> bool:
        return await stopped() == ["suppressed", "resolved"]

    await eventually(twice, what="stopped as suppressed, then as resolved")


async def test_a_flapping_series_is_notified_once_and_pages_when_it_settles_firing(
    rig: Rig, receiver_factory: ReceiverFactory
) -> None:
    hook, pager = await receiver_factory(), await receiver_factory()
    vigil = config(hook.url, pager.url).model_copy(
        update={"flapping": FlappingConfig.model_validate({"changes": 3, "window": "10m"})}
    )
    service = await rig.start(vigil)
    await rig.start_service(build_notifier(rig.settings, vigil, clock=rig.clock.now))
    # fire, resolve, fire: notified and paged as usual
    await rig.samples(80, 10, 80, host="web-3")
    await requests(hook, 3)
    # then it keeps flipping: one notice that it flaps, none for the flips
    await rig.samples(10, 80, 10, 80, host="web-3")
    await rig.until(8)
    await requests(hook, 4)  # the notice may reach the receiver after the last event
    await quiet(rig, hook)
    # (each alert's messages keep their order; two alerts' may cross)
    assert sorted(seen(hook)) == [
        ("AlertFired", "web-3", "firing"),
        ("AlertFired", "web-3", "firing"),
        ("AlertFlapping", "web-3", "flapping"),
        ("AlertResolved", "web-3", "resolved"),
    ]
    pages = len(pager.requests)
    # a whole window firing: it settles, notified once, and pages
    await rig.move(600, service)
    await requests(hook, 5)
    assert seen(hook)[4] == ("AlertSettled", "web-3", "firing")
    await eventually(lambda: len(pager.requests) > pages, what="a page when settled")
    await quiet(rig, hook, pager)
    assert len(pager.requests) == pages + 1


async def test_a_firing_alert_silenced_is_not_sent_again_by_its_repeat_interval(
    rig: Rig, receiver_factory: ReceiverFactory
) -> None:
    hook, pager = await receiver_factory(), await receiver_factory()
    raw = config(hook.url, pager.url).model_dump(by_alias=True, exclude_unset=True)
    raw["route"] = {"channels": ["hook"], "repeat_interval": "300ms"}
    vigil = VigilConfig.model_validate(raw)
    await rig.start(vigil)
    await rig.start_service(build_notifier(rig.settings, vigil, clock=rig.clock.now))
    await rig.samples(80, host="web-5")
    await requests(hook, 3)  # the alert and two repeats
    now = rig.clock.now()
    await rig.book.add(Span("s-7", {"host": "web-5"}, now - HOUR, now + HOUR))
    await rig.until(2)
    await caught_up(rig.bus, "notifier-alerts", "ALERTS")
    await asyncio.sleep(0.1)  # a repeat already on the wire may still land
    await quiet(rig, hook)
    assert {event for event, _, _ in seen(hook)} == {"AlertFired"}
    # unsilenced: it pages, and is repeated again
    sent = len(hook.requests)
    await rig.book.remove("s-7")
    found = await requests(hook, sent + 3)
    assert found[sent:] == [("AlertSuppressionChanged", "web-5", "firing")] * 3
