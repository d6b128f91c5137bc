"""Health tells the truth, against a real server: a stalled evaluator, a log that refuses
writes, the watchdog's trip and Vigil's own figures sent as samples."""

from __future__ import annotations

import time
from typing import Any

import httpx
import orjson
from nats.js.api import AckPolicy, ConsumerConfig

from services.gateway.app import Gateway, build_gateway
from shared import subjects
from shared.bus import EventBus
from shared.events import SELF_SOURCE, WATCHDOG_METRIC, SamplesIngested
from shared.heartbeat import heartbeat_payload
from shared.natsserver import free_port
from shared.settings import Settings
from shared.streams import ensure_streams
from tests.conftest import RuntimeFactory
from tests.gateway.identities import ADMIN
from tests.waiting import eventually

JSON = {"Content-Type": "application/json"}
SAMPLES = orjson.dumps([{"name": "cpu", "value": 1.0}])


async def started(settings: Settings, start_service: RuntimeFactory, **tuning: Any) -> Gateway:
    tuned = settings.model_copy(update={"port": free_port(), **tuning})
    gateway = build_gateway(tuned)
    await start_service(gateway.runtime)
    return gateway


def client(gateway: Gateway) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=gateway.app), base_url="http://localhost", headers=ADMIN
    )


async def test_a_stalled_evaluator_makes_health_fail_with_the_reason(
    bus: EventBus, settings: Settings, start_service: RuntimeFactory
) -> None:
    gateway = await started(settings, start_service, stall_after_s=1.0)
    # the evaluator's durable exists but makes no progress: samples wait behind it
    await bus.js.add_consumer(
        "METRICS",
        ConsumerConfig(
            durable_name="alerts-evaluator",
            ack_policy=AckPolicy.EXPLICIT,
            filter_subject=f"{subjects.SAMPLES}.>",
        ),
    )
    await bus.publish(
        subjects.samples("test"),
        SamplesIngested(aggregate_id="test", samples=[], received_at=time.time()),
    )
    async with client(gateway) as http:

        async def reported() -> bool:
            body = (await http.get("/health")).json()
            return any(p["component"] == "consumer:alerts-evaluator" for p in body["problems"])

        await eventually(reported, within_s=10, what="the stall reported")
        response = await http.get("/health")
        assert response.status_code == 503
        problem = next(
            p for p in response.json()["problems"] if p["component"] == "consumer:alerts-evaluator"
        )
        assert problem["status"] == "failing"
        assert problem["reason"].startswith("evaluation stalled: alerts-evaluator has 1 messages")
        system = (await http.get("/api/monitoring/health/system")).json()
        assert system["status"] == "failing"
        stalled = next(c for c in system["consumers"] if c["durable"] == "alerts-evaluator")
        assert stalled["stalled_s"] >= 1.0
        # a stall is not a reason to refuse writes: the log still stores them
        assert (await http.get("/ready")).status_code == 200
        assert (
            await http.post("/api/monitoring/metrics", content=SAMPLES, headers=JSON)
        ).status_code == 202


async def test_writes_are_refused_at_once_while_the_log_refuses_them(
    bus: EventBus, settings: Settings, start_service: RuntimeFactory
) -> None:
    gateway = await started(settings, start_service)
    async with client(gateway) as http:
        assert (await http.get("/ready")).json()["ready"] is True
        # the log stops taking writes: its streams are gone (as after a lost store)
        for name in ("WATCHDOG", "METRICS", "INCIDENTS"):
            await bus.js.delete_stream(name)

        async def refused() -> bool:
            return (await http.get("/ready")).status_code == 503

        await eventually(refused, within_s=10, what="writes refused")
        ready = (await http.get("/ready")).json()
        assert ready["ready"] is False
        assert ready["reason"].startswith("the event log refuses writes")
        began = time.monotonic()
        ingest = await http.post("/api/monitoring/metrics", content=SAMPLES, headers=JSON)
        command = await http.post(
            "/api/monitoring/incidents", json={"title": "db down", "severity": "critical"}
        )
        assert time.monotonic() - began < 1.0
        assert ingest.status_code == command.status_code == 503
        assert ingest.json()["detail"].startswith("the event log refuses writes")
        health = await http.get("/health")
        assert health.status_code == 503
        assert health.json()["problems"][0]["component"] == "event-log"

        # the log takes writes again: so does the gateway, with no restart
        await ensure_streams(bus.js, Settings())
        await eventually(
            lambda: gateway.state.health.refusal is None, within_s=10, what="writes taken"
        )
        assert (
            await http.post("/api/monitoring/metrics", content=SAMPLES, headers=JSON)
        ).status_code == 202


async def test_the_watchdog_and_own_figures_arrive_as_samples(
    bus: EventBus, settings: Settings, start_service: RuntimeFactory
) -> None:
    await started(settings, start_service, watchdog_interval_s=0.2)
    await bus.nc.publish(
        subjects.heartbeat("notifier"),
        heartbeat_payload(
            "notifier",
            time.time(),
            {
                "faults": {"channel:ops": "HTTP 500"},
                "disk": {"path": "/d", "free_bytes": 5, "total_bytes": 100, "writable": True},
            },
        ),
    )
    seen: list[SamplesIngested] = []

    async def figures_sent() -> bool:
        """A batch with the notifier's reported figures (its beat counts for 0.6 s)."""
        async for recorded in bus.replay("METRICS", subjects.samples(SELF_SOURCE)):
            event = recorded.event
            if isinstance(event, SamplesIngested) and any(
                s["name"] == "vigil_channel_failing" and s["value"] == 1.0 for s in event.samples
            ):
                seen.append(event)
                return True
        return False

    await eventually(figures_sent, within_s=10, what="own figures sent")
    batch = seen[0]
    values = {(s["name"], tuple(s["labels"].items())): s["value"] for s in batch.samples}
    assert values[("vigil_data_dir_free_percent", (("service", "notifier"),))] == 5.0
    assert values[("vigil_service_down", (("service", "notifier"),))] == 0.0
    watchdog = next(s for s in batch.samples if s["name"] == WATCHDOG_METRIC)
    assert abs(watchdog["value"] - batch.received_at) < 1e-6

    async def lag_sent() -> bool:
        async for recorded in bus.replay("METRICS", subjects.samples(SELF_SOURCE)):
            event = recorded.event
            if isinstance(event, SamplesIngested) and any(
                s["name"] == "vigil_consumer_lag" and s["labels"] == {"consumer": "gateway-alerts"}
                for s in event.samples
            ):
                return True
        return False

    await eventually(lag_sent, within_s=10, what="consumer lag sent")
