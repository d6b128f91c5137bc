"""Samples published on METRICS, as the gateway publishes them, reach a real
VictoriaMetrics through the forwarder exactly once: also across an outage of the store,
and past a batch the store refuses for good."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import aiohttp
import cramjam
import pytest
from aiohttp import web

from services.metrics.app import build as build_metrics
from services.metrics.remote.forward import (
    FORWARD_CONSUMER,
    FORWARDED_SAMPLES,
    Forwarder,
    forward_samples,
)
from shared import subjects
from shared.bus import EventBus
from shared.events import Sample, SampleBlock, SamplesIngested
from shared.natsserver import EmbeddedNats, free_port
from shared.runtime import ServiceRuntime
from shared.settings import Settings
from shared.streams import METRICS
from tests.conftest import RuntimeFactory
from tests.metrics.remote.conftest import VictoriaMetrics
from tests.waiting import caught_up, eventually

StoredSample = tuple[tuple[tuple[str, str], ...], int, float]


def forwarding_to(settings: Settings, url: str, **extra: object) -> Settings:
    return settings.model_copy(
        update={
            "metrics_remote_write_url": url,
            "metrics_remote_write_batch_samples": 700,  # messages are cut into requests
            "metrics_remote_write_flush_interval_s": 0.2,
            "metrics_remote_write_min_backoff_s": 0.05,
            "metrics_remote_write_max_backoff_s": 0.3,
            "metrics_remote_write_timeout_s": 5.0,
            **extra,
        }
    )


def samples_of(name: str, series: int, per_series: int, start_s: float) -> list[Sample]:
    """``per_series`` samples a second apart for each of ``series`` series."""
    return [
        Sample(
            name=name,
            value=float(s * 1000 + n) + 0.25,
            timestamp=start_s + n,
            labels={"host": f"h{s}", "zone": "eu"},
        )
        for n in range(per_series)
        for s in range(series)
    ]


def expected(
    batches: list[SamplesIngested] | list[SamplesIngested | SampleBlock],
) -> set[StoredSample]:
    found: set[StoredSample] = set()
    for batch in batches:
        for sample in batch.all_samples():
            labels = tuple(sorted({"__name__": sample["name"], **sample["labels"]}.items()))
            ts = sample.get("timestamp")
            seconds = batch.received_at if ts is None else ts
            found.add((labels, round(seconds * 1000), sample["value"]))
    return found


async def publish(bus: EventBus, samples: list[Sample], received_at: float) -> SamplesIngested:
    batch = SamplesIngested(aggregate_id="api", samples=samples, received_at=received_at)
    await bus.publish(subjects.samples("api"), batch)
    return batch


async def start_forwarder(
    settings: Settings, start_service: RuntimeFactory
) -> tuple[ServiceRuntime, Forwarder]:
    runtime = ServiceRuntime("metrics", settings)
    forwarder = forward_samples(runtime, settings)
    assert forwarder is not None
    await start_service(runtime)
    return runtime, forwarder


async def test_every_sample_reaches_the_store_once(
    bus: EventBus, settings: Settings, start_service: RuntimeFactory, victoria: VictoriaMetrics
) -> None:
    start = time.time() - 600
    batches = [
        await publish(bus, samples_of("fwd_cpu", 40, 50, start), time.time()),  # 2,000
        await publish(bus, samples_of("fwd_mem", 3, 5, start + 100), time.time()),
        # no timestamp: stamped when the gateway received it
        await publish(bus, [Sample(name="fwd_up", value=1.0, labels={})], start + 7.5),
    ]
    _, forwarder = await start_forwarder(forwarding_to(settings, victoria.write_url), start_service)
    await caught_up(bus, FORWARD_CONSUMER.durable, METRICS.name)
    stored = await victoria.samples('{__name__=~"fwd_.*"}')
    assert stored == expected(batches)
    assert forwarder.sent == 2_016
    assert forwarder.dropped == 0

    # and what arrives while it runs
    later = await publish(bus, samples_of("fwd_cpu", 40, 2, start + 50), time.time())
    await caught_up(bus, FORWARD_CONSUMER.durable, METRICS.name)
    assert await victoria.samples('{__name__=~"fwd_.*"}') == expected([*batches, later])


async def test_nothing_is_lost_or_doubled_while_the_store_is_away(
    bus: EventBus, settings: Settings, start_service: RuntimeFactory, victoria: VictoriaMetrics
) -> None:
    start = time.time() - 600
    first = await publish(bus, samples_of("fwd_away", 10, 10, start), time.time())
    _, forwarder = await start_forwarder(forwarding_to(settings, victoria.write_url), start_service)
    await caught_up(bus, FORWARD_CONSUMER.durable, METRICS.name)

    await victoria.stop()
    during = [
        await publish(bus, samples_of("fwd_away", 10, 30, start + 10 + 30 * n), time.time())
        for n in range(3)
    ]
    await eventually(lambda: forwarder.retries >= 3, what="the forwarder to retry")
    info = await bus.js.consumer_info(METRICS.name, FORWARD_CONSUMER.durable)
    assert info.ack_floor.stream_seq == 1  # nothing acknowledged while the store is away
    assert forwarder.status()["remote_write"]["failing_for_s"] is not None

    await victoria.start()
    await caught_up(bus, FORWARD_CONSUMER.durable, METRICS.name)
    assert await victoria.samples('{__name__="fwd_away"}') == expected([first, *during])
    assert forwarder.dropped == 0
    assert forwarder.status()["remote_write"]["failing_for_s"] is None


@dataclass
class Relay:
    """A store in front of VictoriaMetrics that refuses bodies naming a poisoned series
    (400), and fails the first ``unavailable`` requests with 503."""

    target: str
    unavailable: int = 0
    refused: int = 0
    answered: list[int] = field(default_factory=list)
    delay_s: float = 0.0

    async def write(self, request: web.Request) -> web.Response:
        body = await request.read()
        await asyncio.sleep(self.delay_s)
        if self.unavailable > 0:
            self.unavailable -= 1
            self.answered.append(503)
            return web.Response(status=503, text="warming up")
        if b"poisoned" in bytes(cramjam.snappy.decompress_raw(body)):
            self.refused += 1
            self.answered.append(400)
            return web.Response(status=400, text="out of bounds")
        headers = {k: v for k, v in request.headers.items() if k.lower() != "host"}
        async with (
            aiohttp.ClientSession() as session,
            session.post(self.target, data=body, headers=headers) as upstream,
        ):
            status = upstream.status
        self.answered.append(status)
        return web.Response(status=status)


@pytest.fixture
async def relay(victoria: VictoriaMetrics) -> AsyncIterator[tuple[Relay, str]]:
    state = Relay(victoria.write_url)
    app = web.Application()
    app.router.add_post("/api/v1/write", state.write)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    yield state, f"http://127.0.0.1:{port}/api/v1/write"
    await runner.cleanup()


async def test_a_refused_batch_is_dropped_and_counted_and_the_rest_goes_on(
    bus: EventBus,
    settings: Settings,
    start_service: RuntimeFactory,
    victoria: VictoriaMetrics,
    relay: tuple[Relay, str],
) -> None:
    state, url = relay
    state.unavailable = 2  # retried, not dropped
    dropped_before = FORWARDED_SAMPLES.value(outcome="dropped")
    start = time.time() - 600
    good = await publish(bus, samples_of("fwd_ok", 5, 4, start), time.time())
    _, forwarder = await start_forwarder(forwarding_to(settings, url), start_service)
    await caught_up(bus, FORWARD_CONSUMER.durable, METRICS.name)
    poisoned = samples_of("fwd_bad", 1, 3, start)
    for sample in poisoned:
        sample["labels"] = {"state": "poisoned"}
    await publish(bus, poisoned, time.time())
    # (a request is refused as a whole: samples sent with it would go too, as in Prometheus)
    await caught_up(bus, FORWARD_CONSUMER.durable, METRICS.name)
    after = await publish(bus, samples_of("fwd_ok", 5, 4, start + 4), time.time())
    await caught_up(bus, FORWARD_CONSUMER.durable, METRICS.name)

    assert state.answered[:2] == [503, 503]
    assert state.refused == 1  # refused once, never retried
    assert forwarder.dropped == 3
    assert FORWARDED_SAMPLES.value(outcome="dropped") - dropped_before == 3
    assert forwarder.status()["remote_write"]["last_drop"] == "HTTP 400: out of bounds"
    assert await victoria.samples('{__name__="fwd_ok"}') == expected([good, after])


async def test_a_broker_killed_mid_forward_loses_and_doubles_nothing_blocks_included(
    bus: EventBus,
    nats_server: EmbeddedNats,
    settings: Settings,
    start_service: RuntimeFactory,
    victoria: VictoriaMetrics,
    relay: tuple[Relay, str],
) -> None:
    """Requests are on their way to the store when nats-server is SIGKILLed: what the
    forwarder could not acknowledge comes again after the restart, and the store (which
    keeps one of identical samples) ends with every sample once."""
    state, url = relay
    state.delay_s = 0.3  # each request is in flight a while: the kill lands during one
    start = time.time() - 600
    sent: list[SamplesIngested | SampleBlock] = []
    for n in range(4):
        samples = samples_of("fwd_kill", 20, 20, start + 20 * n)
        if n % 2:
            block = SampleBlock.of_samples(samples, time.time(), aggregate_id="api")
            await bus.publish(subjects.samples("api"), block)
            sent.append(block)
        else:
            sent.append(await publish(bus, samples, time.time()))
    await start_forwarder(forwarding_to(settings, url), start_service)
    await eventually(lambda: len(state.answered) >= 1, what="a request forwarded")
    nats_server.kill()
    await asyncio.sleep(1.0)
    nats_server.start()
    late = SamplesIngested(
        aggregate_id="api", samples=samples_of("fwd_kill", 20, 5, start + 100), received_at=0
    )
    for _ in range(100):  # the bus reconnects to the restarted server
        try:
            await bus.publish(subjects.samples("api"), late)
            break
        except Exception:
            await asyncio.sleep(0.2)
    sent.append(late)
    await caught_up(bus, FORWARD_CONSUMER.durable, METRICS.name)
    assert await victoria.samples('{__name__="fwd_kill"}') == expected(sent)
    assert set(state.answered) == {204}


async def test_the_metrics_service_forwards_when_a_url_is_set(
    bus: EventBus, settings: Settings, start_service: RuntimeFactory, victoria: VictoriaMetrics
) -> None:
    batch = await publish(bus, samples_of("fwd_service", 2, 3, time.time() - 60), time.time())
    runtime = await start_service(build_metrics(forwarding_to(settings, victoria.write_url)))
    await caught_up(bus, FORWARD_CONSUMER.durable, METRICS.name)
    assert await victoria.samples('{__name__="fwd_service"}') == expected([batch])
    assert runtime.status()["remote_write"]["sent"] == 6


async def test_without_a_url_nothing_is_forwarded(settings: Settings) -> None:
    runtime = ServiceRuntime("metrics", settings)
    assert forward_samples(runtime, settings) is None
