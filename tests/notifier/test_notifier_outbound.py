"""The notifier, as it runs, behind the outbound guard: channels aimed at Vigil itself or
at the cloud metadata address fail for good without a byte sent, redirects are not
followed, and neither a failed delivery nor a failed dead-man's ping repeats what the
receiver sent."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import pytest
from yarl import URL

from services.notifier.app import build
from services.notifier.deadman import DEADMAN_FAULT
from shared import subjects
from shared.bus import EventBus
from shared.channelconfig import WebhookChannel
from shared.config import DeadmanConfig, OutboundConfig, VigilConfig
from shared.events import (
    AlertFired,
    NotificationDelivered,
    NotificationFailed,
    WatchdogEvaluated,
)
from shared.faults import channel_fault
from shared.natsserver import EmbeddedNats
from shared.settings import Settings
from tests.conftest import RuntimeFactory
from tests.outbound_servers import (
    BANNER_SECRET,
    METADATA_URLS,
    HttpServer,
    banner_server,
    http_server,
    loopback_urls,
)
from tests.waiting import eventually

REFUSED = "connection refused by the outbound policy: "


@pytest.fixture
async def gateway() -> AsyncIterator[HttpServer]:
    async with http_server() as server:
        yield server


@pytest.fixture
async def receiver() -> AsyncIterator[HttpServer]:
    async with http_server() as server:
        yield server


@pytest.fixture
def vigil_settings(settings: Settings, gateway: HttpServer) -> Settings:
    """The process settings as `vigil up` gives them: VIGIL_PORT and NATS_URL."""
    return settings.model_copy(update={"port": gateway.port})


def webhook(name: str, url: str) -> WebhookChannel:
    return WebhookChannel(name=name, type="webhook", url=url, secret="s", timeout=3)


def fired() -> AlertFired:
    return AlertFired(
        aggregate_id="alert-1",
        rule="HighCPU",
        fingerprint="fp-1",
        metric="system_cpu_percent",
        severity="critical",
        value=97.0,
        threshold=90.0,
    )


async def outcomes(bus: EventBus) -> dict[str, NotificationDelivered | NotificationFailed]:
    found = {}
    async for recorded in bus.replay("NOTIFICATIONS"):
        if isinstance(recorded.event, NotificationDelivered | NotificationFailed):
            found[recorded.event.channel] = recorded.event
    return found


async def settled(bus: EventBus, channels: list[WebhookChannel]) -> dict[str, object]:
    async def all_recorded() -> dict[str, object] | None:
        found = await outcomes(bus)
        return dict(found) if len(found) == len(channels) else None

    result: dict[str, object] = await eventually(all_recorded, what="every channel's outcome")
    return result


async def test_channels_aimed_at_vigil_or_metadata_fail_for_good(
    vigil_settings: Settings,
    bus: EventBus,
    start_service: RuntimeFactory,
    gateway: HttpServer,
    receiver: HttpServer,
    nats_server: EmbeddedNats,
) -> None:
    ack = "/api/monitoring/alerts/alert-1/ack"
    aims = {
        **{f"gw-{i}": u for i, u in enumerate(loopback_urls(gateway.port, ack).values())},
        **{f"nats-{i}": u for i, u in enumerate(loopback_urls(nats_server.port).values())},
        **{f"meta-{i}": u for i, u in enumerate(METADATA_URLS)},
    }
    refused = [webhook(name, url) for name, url in aims.items()]
    channels = [*refused, webhook("ops", f"{receiver.url}/hook")]
    await start_service(build(vigil_settings, VigilConfig(channels=channels)))
    await bus.publish(subjects.alert("alert-1"), fired())

    found = await settled(bus, channels)
    for channel in refused:
        outcome = found[channel.name]
        assert isinstance(outcome, NotificationFailed), channel.name
        assert outcome.error.startswith(REFUSED), (channel.name, outcome.error)
        assert (outcome.permanent, outcome.attempts) == (True, 1), channel.name
    assert isinstance(found["ops"], NotificationDelivered)
    assert gateway.hits == []
    assert receiver.hits == ["/hook"]


async def test_a_channel_does_not_follow_redirects(
    vigil_settings: Settings,
    bus: EventBus,
    start_service: RuntimeFactory,
    gateway: HttpServer,
    receiver: HttpServer,
) -> None:
    to_gateway = URL(f"{receiver.url}/redirect").with_query(
        status=307, to=f"http://127.0.0.1:{gateway.port}/api/monitoring/alerts/alert-1/resolve"
    )
    to_receiver = URL(f"{receiver.url}/redirect").with_query(status=308, to=f"{receiver.url}/moved")
    channels = [webhook("to-gateway", str(to_gateway)), webhook("moved", str(to_receiver))]
    await start_service(build(vigil_settings, VigilConfig(channels=channels)))
    await bus.publish(subjects.alert("alert-1"), fired())

    found = await settled(bus, channels)
    errors = {
        name: (o.error, o.permanent)
        for name, o in found.items()
        if isinstance(o, NotificationFailed)
    }
    assert errors == {
        "to-gateway": ("HTTP 307 Temporary Redirect", True),
        "moved": ("HTTP 308 Permanent Redirect", True),
    }
    assert gateway.hits == []
    assert "/moved" not in receiver.hits


async def test_the_files_outbound_section_applies_to_channels(
    vigil_settings: Settings,
    bus: EventBus,
    start_service: RuntimeFactory,
    receiver: HttpServer,
) -> None:
    channels = [webhook("local", f"http://localhost:{receiver.port}/hook")]
    config = VigilConfig(
        channels=channels, outbound=OutboundConfig(deny=["127.0.0.0/8", "::1/128"])
    )
    await start_service(build(vigil_settings, config))
    await bus.publish(subjects.alert("alert-1"), fired())
    found = await settled(bus, channels)
    outcome = found["local"]
    assert isinstance(outcome, NotificationFailed)
    assert outcome.error.startswith(REFUSED) and "is in the denied range" in outcome.error
    assert receiver.hits == []


async def test_failures_never_echo_what_the_receiver_sent(
    vigil_settings: Settings,
    bus: EventBus,
    start_service: RuntimeFactory,
    receiver: HttpServer,
) -> None:
    receiver.status, receiver.reason = 400, f"Bad {BANNER_SECRET}"
    async with banner_server() as banner_url:
        channels = [webhook("banner", banner_url), webhook("reason", f"{receiver.url}/hook")]
        runtime = await start_service(build(vigil_settings, VigilConfig(channels=channels)))
        await bus.publish(subjects.alert("alert-1"), fired())
        # the banner is a transient failure (retried), shown as the channel's fault
        banner_fault = await eventually(
            lambda: runtime.faults.snapshot().get(channel_fault("banner")),
            what="the banner channel's fault",
        )
        outcome = await eventually(lambda: outcomes_of(bus, "reason"), what="the 400")
    assert banner_fault == "invalid HTTP response"
    assert isinstance(outcome, NotificationFailed)
    assert outcome.error == "HTTP 400 Bad Request"
    assert BANNER_SECRET not in str(runtime.faults.snapshot())


async def outcomes_of(bus: EventBus, channel: str) -> object:
    return (await outcomes(bus)).get(channel)


async def test_the_deadman_ping_goes_through_the_guard(
    vigil_settings: Settings,
    bus: EventBus,
    start_service: RuntimeFactory,
    gateway: HttpServer,
) -> None:
    deadman = DeadmanConfig(url=f"http://0.0.0.0:{gateway.port}/ping", interval=1)
    runtime = await start_service(build(vigil_settings, VigilConfig(deadman=deadman)))
    now = time.time()
    trip = WatchdogEvaluated(aggregate_id="gateway", sent_at=now, evaluated_at=now)
    await bus.publish(subjects.watchdog("gateway"), trip)

    fault = await eventually(
        lambda: runtime.faults.snapshot().get(DEADMAN_FAULT), what="the dead-man fault"
    )
    assert fault == (
        "dead-man's switch ping failed: "
        + REFUSED
        + f"0.0.0.0:{gateway.port} is Vigil's own gateway port"
    )
    assert gateway.hits == []
