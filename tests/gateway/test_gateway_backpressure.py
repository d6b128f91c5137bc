"""POST /metrics refuses with 429 while a running service is too far behind on METRICS."""

from __future__ import annotations

import httpx
import orjson

from services.gateway.app import Gateway
from shared.bus import EventBus
from shared.settings import Settings
from tests.conftest import RuntimeFactory
from tests.gateway.backlog import fall_behind, gateway_behind, metrics_running
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
    gateway = await gateway_behind(settings, start_service, max_backlog=3)
    # the store's consumer exists, but nothing reads it: five batches behind
    await fall_behind(bus, gateway, "metrics-store", 5)
    ingest = gateway.state.ingest

    # the metrics service is not running: the log keeps the batches, ingest goes on
    assert (await post(gateway)).status_code == 202
    await eventually(lambda: ingest.backlog.get("metrics-store") == 6, what="the backlog seen")

    await metrics_running(bus, gateway)
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
    gateway = await gateway_behind(settings, start_service, max_backlog=3)
    # the remote-write store is away: its forwarder is five batches behind
    await fall_behind(bus, gateway, "metrics-remote-write", 5)
    await metrics_running(bus, gateway)
    assert (await post(gateway)).status_code == 202
