"""A log rule's alert goes the way of every alert: the alerts service and the notifier on
one nats-server, lines on LOGS, and a real webhook receiver."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from services.notifier.app import build as build_notifier
from shared.bus import EventBus
from shared.config import VigilConfig
from shared.settings import Settings
from tests.alerts.suppression_rig import Clock, Rig
from tests.alerts.test_log_rules import API_ERRORS, batch, errors, send
from tests.conftest import RuntimeFactory
from tests.notifier.conftest import ReceiverFactory
from tests.waiting import eventually


async def test_the_notifier_delivers_a_log_alert_to_a_webhook(
    bus: EventBus,
    settings: Settings,
    start_service: RuntimeFactory,
    receiver_factory: ReceiverFactory,
) -> None:
    rig = Rig(bus, settings, start_service, Clock(datetime.now(UTC).replace(microsecond=0)))
    hook = await receiver_factory()
    vigil = VigilConfig.model_validate(
        {
            "rules": [API_ERRORS],
            "channels": [{"name": "hook", "type": "webhook", "url": hook.url}],
            "route": {"channels": ["hook"]},
        }
    )
    await rig.start(vigil)
    await rig.start_service(build_notifier(rig.settings, vigil, clock=rig.clock.now))
    await send(rig.bus, batch(rig.clock.now(), *errors(5)))

    def delivered() -> list[dict[str, Any]]:
        return [r.json() for r in hook.requests]

    [body] = await eventually(delivered, what="the webhook request")
    assert body["event"] == "AlertFired"
    assert body["alert"]["labels"]["host"] == "web-1"
    assert body["alert"]["labels"]["service"] == "api"
    assert body["alert"]["rule"] == "ApiErrors"
