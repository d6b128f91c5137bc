"""The notifier's own figures, asked of it over NATS as the gateway does: deliveries by
channel and outcome move with real webhook deliveries."""

from __future__ import annotations

from typing import Any

from services.notifier.app import build
from shared import subjects
from shared.bus import EventBus
from shared.channelconfig import WebhookChannel
from shared.config import VigilConfig
from shared.events import AlertFired
from shared.settings import Settings
from tests.conftest import RuntimeFactory
from tests.notifier.conftest import ReceiverFactory, Reply
from tests.prom_text import parse, value
from tests.waiting import eventually

DELIVERIES = "vigil_notifier_deliveries_total"


async def figures(bus: EventBus) -> dict[str, Any]:
    reply = await bus.request(subjects.self_metrics("notifier"), {}, timeout=2.0)
    return parse(reply["text"])


async def test_deliveries_are_counted_by_channel_and_outcome(
    settings: Settings,
    bus: EventBus,
    start_service: RuntimeFactory,
    receiver_factory: ReceiverFactory,
) -> None:
    good = await receiver_factory()
    refusing = await receiver_factory(default=Reply(status=400))
    config = VigilConfig(
        channels=[
            WebhookChannel(name="ops-metrics", type="webhook", url=good.url),
            WebhookChannel(name="bad-metrics", type="webhook", url=refusing.url),
        ]
    )
    await start_service(build(settings, config))
    before = await figures(bus)
    assert value(before, "vigil_service_info", service="notifier") == 1
    event = AlertFired(
        aggregate_id="alert-m",
        rule="HighCPU",
        fingerprint="fp-m",
        metric="system_cpu_percent",
        labels={"host": "web-1"},
        severity="critical",
        value=97.0,
        threshold=90.0,
    )
    await bus.publish(subjects.alert(event.aggregate_id), event)

    def moved(now: dict[str, Any], channel: str, outcome: str) -> float:
        return value(now, DELIVERIES, channel=channel, outcome=outcome) - value(
            before, DELIVERIES, channel=channel, outcome=outcome
        )

    async def counted() -> dict[str, Any] | None:
        now = await figures(bus)
        done = (
            moved(now, "ops-metrics", "delivered") == 1 and moved(now, "bad-metrics", "failed") == 1
        )
        return now if done else None

    await eventually(counted, within_s=10, what="both deliveries counted")
