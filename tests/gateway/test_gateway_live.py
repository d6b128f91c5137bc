"""The real HTTP server: live events over SSE, service health from heartbeats, the dashboard."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import pytest

from services.gateway.app import Gateway
from services.gateway.livestream import LiveEvent, LiveStream
from shared import subjects
from shared.bus import EventBus
from shared.events import AlertFired, CheckConfigured, CheckRunRecorded, IncidentOpened
from shared.runtime import ServiceRuntime
from shared.settings import Settings
from tests.conftest import RuntimeFactory
from tests.waiting import eventually

API = "/api/monitoring"


@pytest.fixture
async def served(gateway: Gateway) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the gateway's own uvicorn server."""
    await eventually(lambda: gateway.http.started)
    base = f"http://127.0.0.1:{gateway.runtime.settings.port}"
    async with httpx.AsyncClient(base_url=base, timeout=5.0) as http:
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

    assert received["event"] == "AlertFired"
    assert received["id"] == f"ALERTS:{seq}"
    data = orjson.loads(received["data"])
    assert (data["type"], data["aggregate_id"], data["stream"], data["seq"]) == (
        "AlertFired",
        "a-live",
        "ALERTS",
        seq,
    )
    assert data["event"]["value"] == 2.5
    # it was applied before it was shown
    assert (await served.get(f"{API}/alerts/a-live")).json()["status"] == "firing"


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
        stream.publish(LiveEvent("AlertFired", "a", "ALERTS", seq, {}))
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
        "ALERTS",
        "INCIDENTS",
        "SYNTHETIC",
        "NOTIFICATIONS",
        "DEADLETTERS",
        "WATCHDOG",
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
