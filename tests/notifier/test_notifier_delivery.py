"""The notifier against a real nats-server and real webhook receivers."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import time
from collections.abc import AsyncIterator
from dataclasses import replace

import pytest

from services.notifier.app import build, rebuild
from services.notifier.domain import delivery_id
from services.notifier.handlers import NotificationDispatcher
from services.notifier.projections import DeliveryLedger
from shared import subjects
from shared.bus import EventBus
from shared.channelconfig import WebhookChannel
from shared.config import VigilConfig
from shared.consumer import Delivery
from shared.db import create_engine
from shared.events import (
    AlertAcknowledged,
    AlertFired,
    Event,
    IncidentOpened,
    NotificationDelivered,
    NotificationFailed,
    NotificationQueued,
)
from shared.natsserver import EmbeddedNats
from shared.settings import Settings
from tests.conftest import RuntimeFactory
from tests.notifier.conftest import ReceiverFactory, Reply
from tests.waiting import eventually

SECRET = "s3cret"


def fired(alert_id: str = "alert-1") -> AlertFired:
    return AlertFired(
        aggregate_id=alert_id,
        rule="HighCPU",
        fingerprint="fp-1",
        metric="system_cpu_percent",
        labels={"host": "web-1"},
        severity="critical",
        value=97.0,
        threshold=90.0,
    )


def webhook(name: str, url: str, secret: str = "", timeout: float = 5.0) -> WebhookChannel:
    return WebhookChannel(name=name, type="webhook", url=url, secret=secret, timeout=timeout)


async def outcomes(bus: EventBus) -> list[Event]:
    """The settled outcomes on NOTIFICATIONS (queued records left out)."""
    return [
        r.event
        async for r in bus.replay("NOTIFICATIONS")
        if isinstance(r.event, NotificationDelivered | NotificationFailed)
    ]


async def queued_records(bus: EventBus) -> list[NotificationQueued]:
    return [
        r.event
        async for r in bus.replay("NOTIFICATIONS")
        if isinstance(r.event, NotificationQueued)
    ]


@pytest.fixture
async def ledger(settings: Settings) -> AsyncIterator[DeliveryLedger]:
    """The service's own ledger database, read from the test."""
    store = DeliveryLedger(create_engine(settings.database_url_for("notifier")))
    await store.create()
    yield store
    await store.dispose()


async def test_signed_webhook_with_the_documented_payload(
    settings: Settings,
    bus: EventBus,
    start_service: RuntimeFactory,
    receiver_factory: ReceiverFactory,
    ledger: DeliveryLedger,
) -> None:
    receiver = await receiver_factory()
    config = VigilConfig(channels=[webhook("ops", receiver.url, SECRET)])
    await start_service(build(settings, config))
    event = fired()
    await bus.publish(subjects.alert(event.aggregate_id), event)

    await eventually(lambda: len(receiver.requests) == 1)
    [request] = receiver.requests
    expected_sig = hmac.new(SECRET.encode(), request.body, hashlib.sha256).hexdigest()
    assert request.headers["X-Vigil-Signature"] == expected_sig
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["X-Vigil-Event"] == "AlertFired"
    assert request.headers["X-Vigil-Event-Id"] == event.id
    assert request.headers["X-Vigil-Delivery"] == delivery_id(event.id, "ops")
    body = request.json()
    assert body["event"] == "AlertFired"
    assert body["event_id"] == event.id
    assert body["summary"].startswith("CRITICAL HighCPU firing")
    assert body["alert"] == {
        "id": "alert-1",
        "rule": "HighCPU",
        "severity": "critical",
        "metric": "system_cpu_percent",
        "labels": {"host": "web-1"},
        "labels_truncated": 0,
        "fingerprint": "fp-1",
        "value": 97.0,
        "threshold": 90.0,
        "status": "firing",
    }

    async def recorded() -> bool:
        return len(await outcomes(bus)) == 1

    await eventually(recorded)
    [outcome] = await outcomes(bus)
    assert isinstance(outcome, NotificationDelivered)
    assert (outcome.event_id, outcome.channel, outcome.attempts, outcome.status_code) == (
        event.id,
        "ops",
        1,
        200,
    )
    assert outcome.causation_id == event.id

    async def marked() -> bool:
        [row] = await ledger.rows()
        return (row["status"], row["attempts"], row["outbox"]) == ("delivered", 1, None)

    await eventually(marked, what="the outcome marked published")


async def test_unsigned_channel_and_ignored_event_types(
    settings: Settings,
    bus: EventBus,
    start_service: RuntimeFactory,
    receiver_factory: ReceiverFactory,
) -> None:
    alerts_only = await receiver_factory()
    incidents_only = await receiver_factory()
    config = VigilConfig(
        channels=[
            webhook("alerts", alerts_only.url).model_copy(update={"events": ["AlertFired"]}),
            webhook("incidents", incidents_only.url).model_copy(
                update={"events": ["IncidentOpened"]}
            ),
        ]
    )
    await start_service(build(settings, config))
    ack = AlertAcknowledged(
        aggregate_id="alert-1", rule="r", fingerprint="f", metric="m", severity="warning", by="al"
    )
    await bus.publish(subjects.alert("alert-1"), ack)
    opened = IncidentOpened(aggregate_id="inc-1", title="API down", severity="critical")
    await bus.publish(subjects.incident("inc-1"), opened)

    await eventually(lambda: len(incidents_only.requests) == 1)
    assert "X-Vigil-Signature" not in incidents_only.requests[0].headers
    assert incidents_only.requests[0].json()["incident"]["title"] == "API down"
    assert alerts_only.requests == []


async def test_one_delivery_per_event_and_channel_across_restarts_and_repeats(
    settings: Settings,
    bus: EventBus,
    start_service: RuntimeFactory,
    receiver_factory: ReceiverFactory,
    ledger: DeliveryLedger,
) -> None:
    receiver = await receiver_factory()
    config = VigilConfig(channels=[webhook("ops", receiver.url, SECRET)])
    first = await start_service(build(settings, config))
    event = fired()
    await bus.publish(subjects.alert(event.aggregate_id), event)
    await eventually(lambda: len(receiver.requests) == 1)
    await first.stop()

    # Same event handled again by a fresh runtime and twice by hand: nothing new is sent.
    await start_service(build(settings, config))
    dispatcher = NotificationDispatcher(config.channels, ledger, lambda: bus)
    await dispatcher.start_lanes()
    try:
        delivery = Delivery("ALERTS", subjects.alert("alert-1"), 1, 2, "notifier-alerts")
        await dispatcher.notify(event, delivery)
        await dispatcher.notify(event, delivery)
    finally:
        await dispatcher.close()

    second = fired("alert-2")
    await bus.publish(subjects.alert("alert-2"), second)
    await eventually(lambda: len(receiver.requests) == 2)

    async def both_recorded() -> bool:
        return len(await outcomes(bus)) == 2

    await eventually(both_recorded)
    assert [r.headers["X-Vigil-Event-Id"] for r in receiver.requests] == [event.id, second.id]
    delivered = [e for e in await outcomes(bus) if isinstance(e, NotificationDelivered)]
    assert sorted(e.event_id for e in delivered) == sorted([event.id, second.id])
    assert len(receiver.requests) == 2


async def test_a_server_that_forgot_what_it_delivered_does_not_page_twice(
    settings: Settings,
    bus: EventBus,
    start_service: RuntimeFactory,
    receiver_factory: ReceiverFactory,
) -> None:
    """A nats-server killed before it wrote its durable's state hands the same messages
    over again as first deliveries; the ledger, not the broker, knows they went out."""
    receiver = await receiver_factory()
    config = VigilConfig(channels=[webhook("ops", receiver.url)])
    first = await start_service(build(settings, config))
    event = fired()
    await bus.publish(subjects.alert(event.aggregate_id), event)
    await eventually(lambda: len(receiver.requests) == 1)
    await first.stop()
    await bus.js.delete_consumer("ALERTS", "notifier-alerts")  # everything forgotten

    await start_service(build(settings, config))
    later = fired("alert-2")
    await bus.publish(subjects.alert(later.aggregate_id), later)
    await eventually(lambda: len(receiver.requests) == 2, what="the new alert paged")
    await asyncio.sleep(0.5)
    assert [r.headers["X-Vigil-Event-Id"] for r in receiver.requests] == [event.id, later.id]


async def test_server_errors_are_retried_with_delay_until_one_success(
    settings: Settings,
    bus: EventBus,
    start_service: RuntimeFactory,
    receiver_factory: ReceiverFactory,
    ledger: DeliveryLedger,
) -> None:
    receiver = await receiver_factory(Reply(500), Reply(502))
    await start_service(build(settings, VigilConfig(channels=[webhook("ops", receiver.url)])))
    event = fired()
    await bus.publish(subjects.alert(event.aggregate_id), event)

    async def delivered() -> bool:
        return any(isinstance(e, NotificationDelivered) for e in await outcomes(bus))

    await eventually(delivered)
    assert len(receiver.requests) == 3
    gaps = [b.at - a.at for a, b in zip(receiver.requests, receiver.requests[1:], strict=False)]
    assert gaps[0] >= 0.75 and gaps[1] >= 1.5  # the lane's backoff: ~1 s, then ~2 s (±20 %)
    # waiting between attempts, the notification was on record, the trigger acknowledged
    assert [q.attempts for q in await queued_records(bus)][:1] == [1]
    [outcome] = await outcomes(bus)
    assert isinstance(outcome, NotificationDelivered)
    assert outcome.attempts == 3
    [row] = await ledger.rows()
    assert (row["status"], row["attempts"]) == ("delivered", 3)


async def test_client_error_is_permanent_and_not_retried(
    settings: Settings,
    bus: EventBus,
    start_service: RuntimeFactory,
    receiver_factory: ReceiverFactory,
    ledger: DeliveryLedger,
) -> None:
    broken = await receiver_factory(default=Reply(404))
    healthy = await receiver_factory()
    config = VigilConfig(channels=[webhook("broken", broken.url), webhook("ops", healthy.url)])
    await start_service(build(settings, config))
    event = fired()
    await bus.publish(subjects.alert(event.aggregate_id), event)

    async def both_settled() -> bool:
        return len(await outcomes(bus)) == 2

    await eventually(both_settled)
    by_channel = {
        e.channel: e
        for e in await outcomes(bus)
        if isinstance(e, NotificationDelivered | NotificationFailed)
    }
    failure = by_channel["broken"]
    assert isinstance(failure, NotificationFailed)
    assert (failure.permanent, failure.attempts, failure.error) == (True, 1, "HTTP 404 Not Found")
    assert isinstance(by_channel["ops"], NotificationDelivered)
    # The message was acked: a later event is processed and the 404 receiver is not asked again.
    later = fired("alert-2")
    await bus.publish(subjects.alert("alert-2"), later)
    await eventually(lambda: len(healthy.requests) == 2)
    await eventually(lambda: len(broken.requests) == 2)
    assert [r.headers["X-Vigil-Event-Id"] for r in broken.requests] == [event.id, later.id]
    rows = {row["channel"]: row for row in await ledger.rows() if row["event_id"] == event.id}
    assert (rows["broken"]["status"], rows["broken"]["permanent"]) == ("failed", True)
    # shown where an operator looks, and re-drivable once the receiver is fixed
    dead = [r.event async for r in bus.replay("DEADLETTERS")]
    assert sorted(d.stream_seq for d in dead) == [1, 2]  # type: ignore[attr-defined]
    assert all("broken: HTTP 404" in d.error for d in dead)  # type: ignore[attr-defined]


async def test_too_many_requests_waits_for_retry_after(
    settings: Settings,
    bus: EventBus,
    start_service: RuntimeFactory,
    receiver_factory: ReceiverFactory,
) -> None:
    receiver = await receiver_factory(Reply(429, {"Retry-After": "1"}))
    await start_service(build(settings, VigilConfig(channels=[webhook("ops", receiver.url)])))
    event = fired()
    await bus.publish(subjects.alert(event.aggregate_id), event)

    async def delivered() -> bool:
        return any(isinstance(e, NotificationDelivered) for e in await outcomes(bus))

    await eventually(delivered)
    assert len(receiver.requests) == 2
    assert receiver.requests[1].at - receiver.requests[0].at >= 0.95
    [outcome] = await outcomes(bus)
    assert isinstance(outcome, NotificationDelivered)
    assert outcome.attempts == 2


async def test_a_dead_channel_does_not_delay_a_healthy_one(
    settings: Settings,
    bus: EventBus,
    start_service: RuntimeFactory,
    receiver_factory: ReceiverFactory,
) -> None:
    hanging = await receiver_factory(default=Reply(200, hang_s=5.0))
    healthy = await receiver_factory()
    config = VigilConfig(
        channels=[webhook("hanging", hanging.url, timeout=3.0), webhook("ops", healthy.url)]
    )
    await start_service(build(settings, config))
    event = fired()
    published = time.monotonic()
    await bus.publish(subjects.alert(event.aggregate_id), event)

    async def healthy_recorded() -> bool:
        return any(getattr(e, "channel", "") == "ops" for e in await outcomes(bus))

    await eventually(healthy_recorded, within_s=2.0)
    assert healthy.requests[0].at - published < 1.0
    assert len(hanging.requests) == 1  # still waiting on the dead one


async def test_a_receiver_down_past_the_retry_window_is_dead_lettered_loudly(
    settings: Settings,
    bus: EventBus,
    start_service: RuntimeFactory,
    receiver_factory: ReceiverFactory,
    ledger: DeliveryLedger,
) -> None:
    receiver = await receiver_factory(default=Reply(503))
    channel = WebhookChannel.model_validate(
        {"name": "ops", "type": "webhook", "url": receiver.url, "retry_for": "2s"}
    )
    await start_service(build(settings, VigilConfig(channels=[channel])))
    event = fired()
    await bus.publish(subjects.alert(event.aggregate_id), event)

    async def gave_up() -> bool:
        return any(isinstance(e, NotificationFailed) for e in await outcomes(bus))

    await eventually(gave_up, within_s=15)
    [failure] = await outcomes(bus)
    assert isinstance(failure, NotificationFailed)
    assert (failure.permanent, failure.gave_up, failure.channel) == (False, True, "ops")
    assert failure.attempts >= 2 and failure.error == "HTTP 503 Service Unavailable"
    [dead] = [r.event async for r in bus.replay("DEADLETTERS")]
    assert (dead.consumer, dead.stream_seq) == ("notifier-alerts", 1)  # type: ignore[attr-defined]
    [row] = await ledger.rows()
    assert (row["status"], row["permanent"]) == ("failed", False)


async def test_a_message_out_when_the_broker_died_is_recorded_later_not_sent_again(
    settings: Settings,
    nats_server: EmbeddedNats,
    bus: EventBus,
    start_service: RuntimeFactory,
    receiver_factory: ReceiverFactory,
    ledger: DeliveryLedger,
) -> None:
    receiver = await receiver_factory(Reply(hang_s=1.0))
    await start_service(build(settings, VigilConfig(channels=[webhook("ops", receiver.url)])))
    event = fired()
    await bus.publish(subjects.alert(event.aggregate_id), event)
    await eventually(lambda: receiver.requests, what="the message on the wire")
    nats_server.kill()  # the receiver answers 200 while nothing can be recorded
    await asyncio.sleep(13.0)  # longer than a publish waits for its acknowledgement (10 s)
    nats_server.start()

    async def recorded() -> bool:
        return any(isinstance(e, NotificationDelivered) for e in await outcomes(bus))

    await eventually(recorded, within_s=20, what="the delivery recorded")
    [row] = await ledger.rows()
    assert row["status"] == "delivered"
    await asyncio.sleep(1.0)
    assert len(receiver.requests) == 1


async def test_a_stop_lets_the_message_on_the_wire_finish_and_be_recorded(
    settings: Settings,
    bus: EventBus,
    start_service: RuntimeFactory,
    receiver_factory: ReceiverFactory,
) -> None:
    receiver = await receiver_factory(Reply(hang_s=1.5))
    runtime = await start_service(
        build(settings, VigilConfig(channels=[webhook("ops", receiver.url)]))
    )
    event = fired()
    await bus.publish(subjects.alert(event.aggregate_id), event)
    await eventually(lambda: receiver.requests, what="the message on the wire")
    await runtime.stop()
    [outcome] = await outcomes(bus)
    assert isinstance(outcome, NotificationDelivered)


async def test_rebuild_recreates_the_ledger_from_the_stream(
    settings: Settings,
    bus: EventBus,
    start_service: RuntimeFactory,
    receiver_factory: ReceiverFactory,
    ledger: DeliveryLedger,
) -> None:
    ok = await receiver_factory()
    gone = await receiver_factory(default=Reply(410))
    config = VigilConfig(channels=[webhook("ops", ok.url), webhook("gone", gone.url)])
    runtime = await start_service(build(settings, config))
    for alert_id in ("a1", "a2"):
        await bus.publish(subjects.alert(alert_id), fired(alert_id))

    async def settled() -> bool:
        return len(await outcomes(bus)) == 4

    await eventually(settled)
    await runtime.stop()
    keys = ("delivery_id", "event_id", "channel", "status", "permanent", "attempts")
    before = sorted(tuple(row[k] for k in keys) for row in await ledger.rows())

    await rebuild(settings)
    after = sorted(tuple(row[k] for k in keys) for row in await ledger.rows())
    assert after == before
    assert len(after) == 4
    last = (await bus.js.stream_info("NOTIFICATIONS")).state.last_seq
    assert await ledger.store.last_seq("notifier-ledger") == last


async def test_deliveries_a_dead_notifier_held_go_out_at_once_and_only_once(
    settings: Settings,
    bus: EventBus,
    start_service: RuntimeFactory,
    receiver_factory: ReceiverFactory,
    ledger: DeliveryLedger,
) -> None:
    receiver = await receiver_factory()
    config = VigilConfig(channels=[webhook("ops", receiver.url, SECRET)])
    await (await start_service(build(settings, config))).stop()  # the durables exist
    sent, unsent = fired("alert-sent"), fired("alert-unsent")
    for event in (sent, unsent):
        await bus.publish(subjects.alert(event.aggregate_id), event)
    # a notifier takes both, delivers one, and dies before acknowledging either
    held = await bus.js.pull_subscribe(
        f"{subjects.ALERT_EVENTS}.>", durable="notifier-alerts", stream="ALERTS"
    )
    assert len(await held.fetch(2, timeout=5)) == 2
    dead = NotificationDispatcher(config.channels, ledger, lambda: bus)
    await dead.start_lanes()
    try:
        await dead.notify(sent, Delivery("ALERTS", "", 1, 1, "notifier-alerts"))
    finally:
        await dead.close()
    await held.unsubscribe()
    assert len(receiver.requests) == 1

    started = time.monotonic()
    await start_service(build(settings, config))
    await eventually(lambda: len(receiver.requests) == 2, within_s=10, what="the held page")
    assert time.monotonic() - started < 10  # not after the 30 s ack wait
    ids = [r.headers["X-Vigil-Event-Id"] for r in receiver.requests]
    assert ids == [sent.id, unsent.id]


async def test_a_redrive_tries_the_failed_channels_again_and_only_those(
    bus: EventBus,
    receiver_factory: ReceiverFactory,
    ledger: DeliveryLedger,
) -> None:
    broken = await receiver_factory(Reply(404))  # then 200: the receiver was fixed
    healthy = await receiver_factory()
    channels = [webhook("broken", broken.url), webhook("ops", healthy.url)]
    dispatcher = NotificationDispatcher(channels, ledger, lambda: bus)
    await dispatcher.start_lanes()
    event = fired()
    try:
        first = Delivery("ALERTS", subjects.alert("alert-1"), 1, 1, "notifier-alerts")
        await dispatcher.notify(event, first)
        await dispatcher.notify(event, replace(first, deliveries=2))  # a plain redelivery
        assert (len(broken.requests), len(healthy.requests)) == (1, 1)
        await dispatcher.notify(event, replace(first, deliveries=3, redrive=True))
    finally:
        await dispatcher.close()
    assert (len(broken.requests), len(healthy.requests)) == (2, 1)
    rows = {row["channel"]: row["status"] for row in await ledger.rows()}
    assert rows == {"broken": "delivered", "ops": "delivered"}
