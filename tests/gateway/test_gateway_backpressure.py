"""POST /metrics refuses with 429 while a running service is too far behind on METRICS."""

from __future__ import annotations

import time

import httpx
import orjson
from nats.js.api import AckPolicy, ConsumerConfig

from services.gateway.app import Gateway, build_gateway
from shared import subjects
from shared.bus import EventBus
from shared.events import SamplesIngested
from shared.heartbeat import heartbeat_payload
from shared.natsserver import free_port
from shared.settings import Settings
from tests.conftest import RuntimeFactory
from tests.gateway.identities import ADMIN
from tests.waiting import eventually

URL = "/api/monitoring/metrics"
BODY = orjson.dumps([{"name": "cpu", "value": 1.0}])


async def post(gateway: Gateway) -> httpx.Response:
    transport = httpx.ASGITransport(app=gateway.app)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://localhost", headers=ADMIN
    ) as http:
        return await http.post(URL, content=BODY, headers={"Content-Type": "application/json"})


async def test_ingest_waits_for_a_running_store_that_is_behind(
    bus: EventBus, settings: Settings, start_service: RuntimeFactory
) -> None:
    tuned = settings.model_copy(
        update={"port": free_port(), "ingest_max_backlog": 3, "heartbeat_interval_s": 30.0}
    )
    gateway = build_gateway(tuned)
    await start_service(gateway.runtime)
    # the store's consumer exists, but nothing reads it: five batches behind
    await bus.js.add_consumer(
        "METRICS",
        ConsumerConfig(
            durable_name="metrics-store",
            ack_policy=AckPolicy.EXPLICIT,
            filter_subject=f"{subjects.SAMPLES}.>",
        ),
    )
    for _ in range(5):
        await bus.publish(
            subjects.samples("test"),
            SamplesIngested(aggregate_id="test", samples=[], received_at=time.time()),
        )
    ingest = gateway.state.ingest
    await eventually(lambda: ingest.backlog.get("metrics-store") == 5, what="the backlog seen")

    # the metrics service is not running: the log keeps the batches, ingest goes on
    assert (await post(gateway)).status_code == 202
    await eventually(lambda: ingest.backlog.get("metrics-store") == 6, what="the backlog seen")

    await bus.nc.publish(subjects.heartbeat("metrics"), heartbeat_payload("metrics", time.time()))
    await eventually(
        lambda: any(
            s.up for s in gateway.state.liveness.status(time.time()) if s.service == "metrics"
        ),
        what="the metrics heartbeat",
    )
    stored = (await bus.js.stream_info("METRICS")).state.messages
    refused = await post(gateway)
    assert refused.status_code == 429
    assert refused.headers["Retry-After"] == "1"
    assert "metrics-store is 6 batches behind (limit 3)" in refused.json()["detail"]
    assert (await bus.js.stream_info("METRICS")).state.messages == stored

    # the store catches up: accepted again
    reader = await bus.js.pull_subscribe_bind("metrics-store", "METRICS")
    for msg in await reader.fetch(10, timeout=2):
        await msg.ack_sync()
    await eventually(lambda: ingest.backlog.get("metrics-store") == 0, what="the store to catch up")
    assert (await post(gateway)).status_code == 202


async def test_a_forwarder_behind_does_not_hold_ingest_back(
    bus: EventBus, settings: Settings, start_service: RuntimeFactory
) -> None:
    tuned = settings.model_copy(
        update={"port": free_port(), "ingest_max_backlog": 3, "heartbeat_interval_s": 30.0}
    )
    gateway = build_gateway(tuned)
    await start_service(gateway.runtime)
    # the remote-write store is away: its forwarder is five batches behind
    await bus.js.add_consumer(
        "METRICS",
        ConsumerConfig(
            durable_name="metrics-remote-write",
            ack_policy=AckPolicy.EXPLICIT,
            filter_subject=f"{subjects.SAMPLES}.>",
        ),
    )
    for _ in range(5):
        await bus.publish(
            subjects.samples("test"),
            SamplesIngested(aggregate_id="test", samples=[], received_at=time.time()),
        )
    ingest = gateway.state.ingest
    await eventually(lambda: ingest.backlog.get("metrics-remote-write") == 5, what="the backlog")
    await bus.nc.publish(subjects.heartbeat("metrics"), heartbeat_payload("metrics", time.time()))
    await eventually(
        lambda: any(
            s.up for s in gateway.state.liveness.status(time.time()) if s.service == "metrics"
        ),
        what="the metrics heartbeat",
    )
    assert (await post(gateway)).status_code == 202
