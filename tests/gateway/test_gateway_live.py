"""The real HTTP server: live events over SSE, service health from heartbeats, the dashboard."""

from __future__ import annotations

import asyncio
import os
import socket
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import pytest

from services.gateway.app import Gateway, build_gateway
from services.gateway.live.stream import LiveEvent, LiveStream
from shared import subjects
from shared.bus import EventBus
from shared.events import (
    AlertFired,
    CheckConfigured,
    CheckRemoved,
    CheckRunRecorded,
    IncidentOpened,
)
from shared.runtime import ServiceRuntime
from shared.settings import Settings
from tests.conftest import RuntimeFactory
from tests.gateway.identities import ADMIN, ADMIN_KEY
from tests.waiting import eventually

API = "/api/monitoring"
AUTHORIZATION = f"Authorization: Bearer {ADMIN_KEY}\r\n".encode()


@pytest.fixture
async def served(gateway: Gateway) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the gateway's own uvicorn server."""
    await eventually(lambda: gateway.http.started)
    base = f"http://127.0.0.1:{gateway.runtime.settings.port}"
    async with httpx.AsyncClient(base_url=base, timeout=5.0, headers=ADMIN) as http:
        yield http


def alert_fired(alert_id: str) -> AlertFired:
    return AlertFired(
        aggregate_id=alert_id,
        rule="HighLoad",
        fingerprint="fp-load",
        metric="system_load1",
        severity="warning",
        value=2.5,
        threshold=2.0,
    )


async def next_sse_event(lines: AsyncIterator[str]) -> dict[str, str]:
    """The next complete event (fields up to the blank line); comments are skipped."""
    fields: dict[str, str] = {}
    async for line in lines:
        if not line:
            if fields:
                return fields
            continue
        if line.startswith(":"):
            fields.setdefault("comment", line[1:].strip())
            continue
        name, _, value = line.partition(": ")
        fields[name] = value
    raise AssertionError("stream ended")


async def test_a_projected_event_reaches_a_live_client(
    served: httpx.AsyncClient, gateway: Gateway, bus: EventBus
) -> None:
    async with served.stream("GET", f"{API}/events") as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        lines = response.aiter_lines()
        hello = await asyncio.wait_for(next_sse_event(lines), 5)
        assert hello == {"retry": "2000", "comment": "connected"}

        seq = await bus.publish(subjects.alert("a-live"), alert_fired("a-live"))
        received = await asyncio.wait_for(next_sse_event(lines), 5)

    assert received["event"] == "alert"
    assert received["id"] == f"ALERTS:{seq}"
    data = orjson.loads(received["data"])
    assert (data["resource"], data["id"], data["change"], data["seq"]) == (
        "alert",
        "a-live",
        "AlertFired",
        seq,
    )
    # the public view the REST API answers, not the internal event
    listed = (await served.get(f"{API}/alerts")).json()["items"]
    assert data["view"] == listed[0]
    assert (data["view"]["status"], data["view"]["value"]) == ("firing", 2.5)
    assert "event" not in data and "aggregate_id" not in data["view"]


async def test_the_live_stream_needs_a_viewer(served: httpx.AsyncClient) -> None:
    refused = await served.get(f"{API}/events", headers={"Authorization": ""})
    assert refused.status_code == 401
    assert refused.headers["content-type"] == "application/problem+json"


async def test_a_removed_check_is_shown_as_gone(
    served: httpx.AsyncClient, gateway: Gateway, bus: EventBus
) -> None:
    configured = CheckConfigured(aggregate_id="c-1", name="shop", url="http://shop.test/")
    removed = CheckRemoved(aggregate_id="c-1", version=2, name="shop")
    async with served.stream("GET", f"{API}/events") as response:
        lines = response.aiter_lines()
        await asyncio.wait_for(next_sse_event(lines), 5)
        await bus.publish(subjects.check_definition("c-1"), configured)
        shown = orjson.loads((await asyncio.wait_for(next_sse_event(lines), 5))["data"])
        await bus.publish(subjects.check_definition("c-1"), removed)
        gone = orjson.loads((await asyncio.wait_for(next_sse_event(lines), 5))["data"])
    assert (shown["resource"], shown["change"], shown["view"]["interval"]) == (
        "check",
        "CheckConfigured",
        "30s",
    )
    assert (gone["id"], gone["change"], gone["view"]) == ("c-1", "CheckRemoved", None)


async def test_live_clients_past_the_limit_are_refused_and_the_api_stays_reachable(
    served: httpx.AsyncClient, gateway: Gateway
) -> None:
    gateway.state.live.max_clients = 1
    async with served.stream("GET", f"{API}/events") as first:
        await asyncio.wait_for(next_sse_event(first.aiter_lines()), 5)
        refused = await served.get(f"{API}/events")
        assert refused.status_code == 429
        assert refused.headers["retry-after"] == "30"
        assert "1 live-stream clients are connected" in refused.json()["detail"]
        assert (await served.get(f"{API}/alerts")).status_code == 200
    await eventually(lambda: not gateway.state.live.subscribers)
    async with served.stream("GET", f"{API}/events") as again:
        assert again.status_code == 200


async def test_an_idle_stream_gets_keep_alive_comments(
    served: httpx.AsyncClient, gateway: Gateway
) -> None:
    gateway.state.keepalive_s = 0.05
    async with served.stream("GET", f"{API}/events") as response:
        lines = response.aiter_lines()
        await asyncio.wait_for(next_sse_event(lines), 5)
        ping = await asyncio.wait_for(next_sse_event(lines), 5)
    assert ping == {"comment": "keep-alive"}


async def test_stopping_the_gateway_ends_open_streams(
    served: httpx.AsyncClient, gateway: Gateway
) -> None:
    async with served.stream("GET", f"{API}/events") as response:
        lines = response.aiter_lines()
        await asyncio.wait_for(next_sse_event(lines), 5)
        started = time.monotonic()
        await asyncio.wait_for(gateway.runtime.stop(), 5)
        assert time.monotonic() - started < 3
        rest = [line async for line in lines]
    assert rest == []
    with pytest.raises(httpx.ConnectError):
        await served.get("/health")


async def test_a_slow_client_is_dropped_without_holding_up_others() -> None:
    stream = LiveStream(client_queue_size=2)
    slow = stream.subscribe()
    fast = stream.subscribe()
    seen: list[int] = []
    for seq in range(1, 5):
        stream.publish(LiveEvent("alert", "a", "AlertFired", "ALERTS", seq, {}))
        item = await fast.next(1.0)
        assert item is not None
        seen.append(item.seq)
    assert seen == [1, 2, 3, 4]
    assert slow.dropped is True
    assert await slow.next(1.0) is None  # its stream ends
    assert stream.subscribers == {fast}


async def test_system_health_shows_a_service_up_then_down(
    served: httpx.AsyncClient, gateway_settings: Settings, start_service: RuntimeFactory
) -> None:
    alerts = await start_service(ServiceRuntime("alerts", gateway_settings))

    async def alerts_status() -> dict[str, Any]:
        health = (await served.get(f"{API}/health/system")).json()
        assert set(health["services"]) >= {"gateway", "metrics", "alerts", "incidents"}
        return dict(health["services"]["alerts"])

    async def alerts_up() -> bool:
        return bool((await alerts_status())["status"] == "up")

    await eventually(alerts_up)
    status = await alerts_status()
    assert status["pid"] == os.getpid()
    assert status["host"]
    assert status["uptime_s"] >= 0

    await alerts.stop()

    async def alerts_down() -> bool:
        return bool((await alerts_status())["status"] == "down")

    await eventually(alerts_down, within_s=3)
    assert (await alerts_status())["last_seen"] is not None

    health = (await served.get(f"{API}/health/system")).json()
    assert health["status"] == "failing"  # no evaluator: nothing can page
    reasons = {p["component"]: p for p in health["problems"]}
    assert reasons["service:alerts"]["status"] == "failing"
    assert "alerts is down: no heartbeat for" in reasons["service:alerts"]["reason"]
    streams = {s["name"]: s for s in health["streams"]}
    assert set(streams) == {
        "METRICS",
        "LOGS",
        "PAGING",
        "SILENCES",
        "ALERTS",
        "INCIDENTS",
        "SYNTHETIC",
        "NOTIFICATIONS",
        "DEADLETTERS",
        "CONFIG",
        "WATCHDOG",
        "IDENTITY",
        "AUDIT",
    }
    durables = {(c["stream"], c["durable"]): c for c in health["consumers"]}
    assert durables[("ALERTS", "gateway-alerts")]["lag"] == 0
    assert ("DEADLETTERS", "gateway-deadletters") in durables


async def test_liveness_reports_the_nats_connection(served: httpx.AsyncClient) -> None:
    response = await served.get("/health")
    assert (response.status_code, response.json()) == (
        200,
        {"status": "ok", "nats_connected": True, "problems": []},
    )


async def test_the_dashboard_summary_counts_what_is_projected(
    served: httpx.AsyncClient, gateway: Gateway, bus: EventBus
) -> None:
    await bus.publish(subjects.alert("a-1"), alert_fired("a-1"))
    last_alert = await bus.publish(subjects.alert("a-2"), alert_fired("a-2"))
    await bus.publish(
        subjects.incident("i-1"),
        IncidentOpened(aggregate_id="i-1", title="load high", severity="warning"),
    )
    await bus.publish(
        subjects.check_definition("home"),
        CheckConfigured(aggregate_id="home", name="home", url="http://shop.test/"),
    )
    last = await bus.publish(
        subjects.check_result("home"),
        CheckRunRecorded(
            aggregate_id="home", name="home", ok=False, latency_ms=30.0, consecutive_failures=2
        ),
    )
    await eventually(lambda: gateway.state.progress.applied.get("gateway-synthetic", 0) >= last)
    await eventually(lambda: gateway.state.progress.applied.get("gateway-incidents", 0) >= 1)
    await eventually(lambda: gateway.state.progress.applied.get("gateway-alerts", 0) >= last_alert)

    summary = (await served.get(f"{API}/health/dashboard")).json()
    assert summary["alerts_by_status"] == {"firing": 2}
    assert summary["alerts_by_severity"] == {"warning": 2}
    assert summary["alerts_by_status_and_severity"] == {"firing": {"warning": 2}}
    assert summary["open_incidents_by_status"] == {"investigating": 1}
    assert [(c["name"], c["last_ok"], c["consecutive_failures"]) for c in summary["checks"]] == [
        ("home", False, 2)
    ]
    assert summary["services"]["gateway"]["status"] == "up"


async def test_the_dashboard_page_and_api_docs_are_served(served: httpx.AsyncClient) -> None:
    page = await served.get("/")
    assert page.status_code == 200
    assert "<title>Vigil</title>" in page.text
    script = await served.get("/static/app.js")
    assert script.status_code == 200
    assert "new EventSource(" in script.text
    assert (await served.get("/static/style.css")).status_code == 200
    assert (await served.get("/docs")).status_code == 200
    schema = (await served.get("/openapi.json")).json()
    assert "/api/monitoring/incidents/{incident_id}/status" in schema["paths"]
    assert "IncidentCreate" in schema["components"]["schemas"]


async def projected_through(gateway: Gateway, seq: int) -> None:
    await eventually(lambda: gateway.state.progress.applied.get("gateway-alerts", 0) >= seq)


async def test_a_live_client_that_stops_reading_is_cut_off_while_others_get_everything(
    gateway_settings: Settings, start_service: RuntimeFactory, bus: EventBus
) -> None:
    tuned = gateway_settings.model_copy(update={"http_write_timeout_s": 1.0})
    gateway = build_gateway(tuned)
    await start_service(gateway.runtime)
    live = gateway.state.live
    loop = asyncio.get_running_loop()
    # a client that asks for the stream, then never reads (its small window fills at once)
    stalled = socket.socket()
    stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    stalled.setblocking(False)
    await loop.sock_connect(stalled, ("127.0.0.1", tuned.port))
    await loop.sock_sendall(
        stalled,
        b"GET /api/monitoring/events HTTP/1.1\r\nHost: localhost\r\n" + AUTHORIZATION + b"\r\n",
    )

    received: list[int] = []
    published: list[int] = []
    base = f"http://127.0.0.1:{tuned.port}"
    async with (
        httpx.AsyncClient(base_url=base, timeout=10.0, headers=ADMIN) as http,
        http.stream("GET", f"{API}/events") as reading,
    ):

        async def read_all() -> None:
            lines = reading.aiter_lines()
            while True:
                event = await next_sse_event(lines)
                if "data" in event:
                    received.append(orjson.loads(event["data"])["seq"])

        reader = asyncio.create_task(read_all())
        await eventually(lambda: len(live.subscribers) == 2)
        # events until the stalled client is dropped (its buffers hold a few hundred);
        # bounded, so that a regression fails instead of publishing forever
        while len(live.subscribers) == 2 and len(published) < 5_000:
            published += await asyncio.gather(
                *(
                    bus.publish(subjects.alert(f"a-{len(published) + n}"), alert_fired("a"))
                    for n in range(50)
                )
            )
            await projected_through(gateway, max(published))
            await asyncio.sleep(0.05)
        assert len(live.subscribers) == 1, f"still streaming after {len(published)} events"
        # and its connection is closed while it still reads nothing
        stalled_from = stalled.getsockname()

        def stalled_open() -> bool:
            return any(c.client == stalled_from for c in gateway.http.connections.open)

        await eventually(lambda: not stalled_open(), what="the stalled connection closed")
        await eventually(lambda: len(received) >= len(published), what="every event read")
        reader.cancel()
    assert received == sorted(published)
    assert gateway.state.progress.applied["gateway-alerts"] == max(published)

    # what the stalled client had been sent ends there: its stream did not go on
    drained = b""
    while True:
        try:
            chunk = await asyncio.wait_for(loop.sock_recv(stalled, 65536), 10)
        except ConnectionResetError:
            break
        if not chunk:
            break
        drained += chunk
    stalled.close()
    assert 0 < drained.count(b"\nevent: alert\n") < len(published)
