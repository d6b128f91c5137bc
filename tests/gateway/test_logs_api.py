"""Logs through the HTTP API with the metrics service behind it, on a real nats-server:
ingest whole or not at all, search and counts, roles, and each line stored once."""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

import httpx
import orjson
import pytest
from nats.js.api import AckPolicy, ConsumerConfig

from services.gateway.app import Gateway
from services.metrics.app import build as build_metrics
from services.metrics.logs.consumer import LOGS_CONSUMER, log_storer
from services.metrics.logs.service import open_log_store, replay_logs
from services.metrics.logs.store import STORE_PROJECTION
from shared.bus import EventBus
from shared.consumer import consume_batches_forever
from shared.runtime import ServiceRuntime
from shared.settings import Settings
from tests.conftest import RuntimeFactory
from tests.gateway.backlog import gateway_behind, metrics_running
from tests.gateway.conftest import detail
from tests.gateway.identities import ADMIN, headers_for
from tests.waiting import caught_up, eventually

URL = "/api/monitoring/logs"
JSON = {"Content-Type": "application/json"}


@pytest.fixture
async def metrics(gateway_settings: Settings, start_service: RuntimeFactory) -> ServiceRuntime:
    return await start_service(build_metrics(gateway_settings))


async def stored(bus: EventBus) -> None:
    await caught_up(bus, STORE_PROJECTION, "LOGS")


async def page(client: httpx.AsyncClient, **params: Any) -> dict[str, Any]:
    response = await client.get(URL, params=params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_lines_posted_are_found_by_every_filter(
    client: httpx.AsyncClient, bus: EventBus, metrics: ServiceRuntime
) -> None:
    now = time.time()
    one = await client.post(
        URL,
        json={"message": "payment service started", "level": "INFO", "service": "payments"},
    )
    assert one.status_code == 202, one.text
    assert one.json()["accepted"] == 1 and one.json()["seq"] == 1
    many = await client.post(
        URL,
        json=[
            {
                "message": "connection refused by db-1\n  retrying in 5s",
                "level": "error",
                "service": "payments",
                "labels": {"host": "web-1"},
                "fields": {"attempt": 2},
                "trace_id": "4BF92F3577B34DA6A3CE929D0E0E4736",
                "timestamp": now - 30,
            },
            {"message": "cache warm", "level": "debug", "service": "web", "timestamp": now - 20},
            {"message": "disk at 91%", "level": "warning", "service": "web", "timestamp": now - 10},
        ],
    )
    assert many.status_code == 202 and many.json() == {
        "accepted": 3,
        "batch_id": many.json()["batch_id"],
        "seq": 2,
    }
    await stored(bus)

    everything = await page(client)
    assert [e["message"] for e in everything["entries"]] == [
        "payment service started",
        "disk at 91%",
        "cache warm",
        "connection refused by db-1\n  retrying in 5s",
    ]
    assert everything["next_cursor"] is None
    refused = everything["entries"][3]
    assert refused["level"] == "error"
    assert refused["labels"] == {"host": "web-1"}
    assert refused["fields"] == {"attempt": 2}
    assert refused["trace_id"] == "4bf92f3577b34da6a3ce929d0e0e4736"

    async def messages(**params: Any) -> list[str]:
        return [e["message"] for e in (await page(client, **params))["entries"]]

    assert await messages(level="error,warning") == [
        "disk at 91%",
        "connection refused by db-1\n  retrying in 5s",
    ]
    assert await messages(service="web") == ["disk at 91%", "cache warm"]
    assert await messages(labels="host=web-1") == ["connection refused by db-1\n  retrying in 5s"]
    assert await messages(q='"connection refused" OR disk', service="payments") == [
        "connection refused by db-1\n  retrying in 5s"
    ]
    assert await messages(q="-cache", start=now - 25, end=now - 5) == ["disk at 91%"]
    iso = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now - 300))
    assert len(await messages(start=iso)) == 4

    first = await page(client, limit=3)
    second = await page(client, limit=3, cursor=first["next_cursor"])
    assert len(first["entries"]) == 3 and second["next_cursor"] is None
    assert [e["message"] for e in second["entries"]] == [
        "connection refused by db-1\n  retrying in 5s"
    ]

    shape = await client.get(f"{URL}/histogram", params={"start": now - 60, "end": now + 60})
    assert shape.status_code == 200, shape.text
    body = shape.json()
    assert body["step"] == 1.0 and len(body["buckets"]) == 120
    totals: dict[str, int] = {}
    for bucket in body["buckets"]:
        for level, count in bucket["counts"].items():
            totals[level] = totals.get(level, 0) + count
    assert totals == {"trace": 0, "debug": 1, "info": 1, "warn": 1, "error": 1, "fatal": 0}


async def test_a_retried_post_with_the_same_idempotency_key_is_stored_once(
    client: httpx.AsyncClient, bus: EventBus, metrics: ServiceRuntime
) -> None:
    body = orjson.dumps([{"message": "order 17 placed"}, {"message": "order 17 paid"}])
    headers = {**JSON, "Idempotency-Key": "logs-batch-1"}
    first = await client.post(URL, content=body, headers=headers)
    again = await client.post(URL, content=body, headers=headers)
    assert first.status_code == again.status_code == 202
    assert first.json() == again.json() == {"accepted": 2, "batch_id": "logs-batch-1", "seq": 1}
    await stored(bus)
    assert len((await page(client, q="order"))["entries"]) == 2


BAD = [
    (b"{nope", 400, "body"),
    (b"[]", 422, "entries"),
    (orjson.dumps([{"message": "ok"}, {"message": "x", "level": "loud"}]), 422, "entries[1].level"),
    (orjson.dumps([{"message": "ok"}, {"message": "a\x00b"}]), 422, "entries[1].message"),
    (orjson.dumps([{"message": "ok"}, {"message": "x", "fields": {"a": [1]}}]), 422, None),
    (
        orjson.dumps([{"message": "x", "timestamp": time.time() + 3600}]),
        422,
        "entries[0].timestamp",
    ),
    (orjson.dumps([{"message": "x" * 40_000}]), 422, "entries[0].message"),
    (orjson.dumps([{"message": "x"}] * 10_001), 422, "entries"),
    (orjson.dumps([{"message": "y" * 30_000}] * 200), 413, "body"),
]


@pytest.mark.parametrize(("body", "status", "field"), BAD)
async def test_a_bad_batch_is_refused_naming_the_field_and_nothing_is_stored(
    client: httpx.AsyncClient, bus: EventBus, body: bytes, status: int, field: str | None
) -> None:
    response = await client.post(URL, content=body, headers=JSON)
    assert response.status_code == status, response.text
    problem = response.json()
    if field is not None:
        assert problem["field"] == field
        assert detail(response).startswith(f"{field}: ")
    else:
        assert problem["field"].startswith("entries[1].fields")
    assert (await bus.js.stream_info("LOGS")).state.messages == 0


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"q": '"unclosed'}, "q"),
        ({"q": "a AND"}, "q"),
        ({"level": "loud"}, "level"),
        ({"cursor": "not-a-cursor"}, "cursor"),
        ({"start": "yesterday"}, "start"),
        ({"start": "100", "end": "50"}, "end"),
        ({"labels": "host"}, "labels"),
        ({"limit": "1001"}, "limit"),
    ],
)
async def test_a_bad_query_is_answered_422_naming_the_parameter(
    client: httpx.AsyncClient, metrics: ServiceRuntime, params: dict[str, str], field: str
) -> None:
    response = await client.get(URL, params=params)
    assert response.status_code == 422, response.text
    assert field in detail(response) or response.json().get("field") == field


async def test_a_histogram_with_too_many_buckets_names_step(client: httpx.AsyncClient) -> None:
    response = await client.get(f"{URL}/histogram", params={"step": "0.01"})
    assert response.status_code == 422
    assert response.json()["field"] == "step"


async def test_ingest_keys_send_and_viewers_read(
    gateway: Gateway, client: httpx.AsyncClient, bus: EventBus, metrics: ServiceRuntime
) -> None:
    ingest = await headers_for(gateway.app, client, "ingest")
    viewer = await headers_for(gateway.app, client, "viewer")
    assert (await client.post(URL, json={"message": "m"}, headers=ingest)).status_code == 202
    assert (await client.get(URL, headers=ingest)).status_code == 403
    assert (await client.post(URL, json={"message": "m"}, headers=viewer)).status_code == 403
    await stored(bus)
    read = await client.get(URL, headers=viewer)
    assert read.status_code == 200 and len(read.json()["entries"]) == 1
    assert (await client.get(URL, headers={"Authorization": "Bearer nope"})).status_code == 401


async def test_a_batch_the_log_cannot_store_is_answered_503(
    client: httpx.AsyncClient, bus: EventBus
) -> None:
    await bus.js.delete_stream("LOGS")
    response = await client.post(URL, json={"message": "lost?"})
    assert response.status_code == 503
    assert "send it again with the same Idempotency-Key" in detail(response)


async def test_queries_without_the_store_running_are_answered_503(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get(URL)
    assert response.status_code == 503
    assert "vigil.query.logs.search" in detail(response)


async def test_redelivered_messages_and_a_restart_store_each_line_once(
    gateway_settings: Settings,
    client: httpx.AsyncClient,
    bus: EventBus,
    start_service: RuntimeFactory,
) -> None:
    service = await start_service(build_metrics(gateway_settings))
    for n in range(5):
        posted = await client.post(URL, json=[{"message": f"batch {n} line {k}"} for k in range(3)])
        assert posted.status_code == 202
    await stored(bus)
    await service.stop()

    # the server hands every message over again, from the first: the checkpoint skips them
    await bus.js.delete_consumer("LOGS", STORE_PROJECTION)
    store = open_log_store(gateway_settings)
    await store.open()
    handled: list[int] = []
    handler = log_storer(store)

    async def counting(items: list[Any]) -> None:
        handled.extend(delivery.stream_seq for _event, delivery in items)
        await handler(items)

    loop = asyncio.create_task(consume_batches_forever(lambda: bus, LOGS_CONSUMER, counting))
    try:
        await eventually(lambda: len(handled) >= 5, what="the five batches handed over again")
        assert sorted(handled) == [1, 2, 3, 4, 5]
        assert await store.count() == 15
        # a replay of the whole stream (what a rebuild does) adds nothing either
        assert await replay_logs(bus, store) == 5
        assert await store.count() == 15
    finally:
        loop.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await loop
        await store.close()

    # started again, the service goes on after its checkpoint
    await start_service(build_metrics(gateway_settings))
    assert (await client.post(URL, json={"message": "after the restart"})).status_code == 202
    await stored(bus)
    lines = (await page(client, limit=100))["entries"]
    assert len(lines) == 16
    assert lines[0]["message"] == "after the restart"


async def test_ingest_waits_while_the_running_log_store_is_far_behind(
    settings: Settings, bus: EventBus, start_service: RuntimeFactory
) -> None:
    gateway = await gateway_behind(settings, start_service, max_backlog=3)
    transport = httpx.ASGITransport(app=gateway.app)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://localhost", headers=ADMIN
    ) as http:
        await bus.js.add_consumer(
            "LOGS",
            ConsumerConfig(
                durable_name=STORE_PROJECTION,
                ack_policy=AckPolicy.EXPLICIT,
                filter_subject="logs.entries.>",
            ),
        )
        for n in range(4):
            assert (await http.post(URL, json={"message": f"m{n}"})).status_code == 202
        backlog = gateway.state.log_ingest
        await eventually(lambda: backlog.backlog.get(STORE_PROJECTION) == 4, what="backlog")
        # its owner is not running: the lines wait in LOGS, ingest goes on
        assert (await http.post(URL, json={"message": "still taken"})).status_code == 202
        await metrics_running(bus, gateway)
        refused = await http.post(URL, json={"message": "wait"})
        assert refused.status_code == 429
        assert refused.headers["Retry-After"] == "1"
        assert detail(refused).startswith("logs-store is ")
        assert "batches behind (limit 3)" in detail(refused)
        # sample ingest does not wait for the log store
        samples = await http.post("/api/monitoring/metrics", json=[{"name": "x", "value": 1}])
        assert samples.status_code == 202
