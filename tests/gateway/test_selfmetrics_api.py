"""``/metrics`` and ``/metrics/{service}`` against a started system: every service's
figures parse as Prometheus text, move with traffic, need a viewer, and a stopped
service is a 503 that names it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from services.alerts.app import build as build_alerts
from services.gateway.app import Gateway
from services.incidents.app import build as build_incidents
from services.metrics.app import build as build_metrics
from services.notifier.app import build as build_notifier
from services.synthetic.app import build as build_synthetic
from shared.runtime import ServiceRuntime
from shared.selfmetrics import CONTENT_TYPE
from shared.services import SERVICES
from shared.settings import Settings
from tests.conftest import RuntimeFactory
from tests.gateway.identities import headers_for
from tests.prom_text import parse, value
from tests.waiting import eventually

API = "/api/monitoring"


@pytest.fixture
async def owners(
    gateway_settings: Settings, start_service: RuntimeFactory
) -> dict[str, ServiceRuntime]:
    started = {}
    for build in (build_metrics, build_alerts, build_incidents, build_synthetic, build_notifier):
        runtime = await start_service(build(gateway_settings))
        started[runtime.name] = runtime
    return started


@pytest.fixture
async def viewer(gateway: Gateway, client: httpx.AsyncClient) -> dict[str, str]:
    return await headers_for(gateway.app, client, "viewer")


@pytest.fixture
async def served(gateway: Gateway) -> AsyncIterator[httpx.AsyncClient]:
    """Over the real HTTP server, as Prometheus scrapes it."""
    await eventually(lambda: gateway.http.started)
    base = f"http://127.0.0.1:{gateway.runtime.settings.port}"
    async with httpx.AsyncClient(base_url=base, timeout=10.0) as http:
        yield http


async def scrape(http: httpx.AsyncClient, path: str, headers: dict[str, str]) -> dict[str, Any]:
    response = await http.get(path, headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == CONTENT_TYPE
    families = parse(response.text)
    # and Prometheus's own client library reads the same families and series
    official = {f.name: f for f in text_string_to_metric_families(response.text)}
    assert {f.type for f in official.values()} <= {"counter", "gauge", "histogram"}
    assert sum(len(f.samples) for f in official.values()) == sum(
        len(f["samples"]) for f in families.values()
    )
    return families


async def test_every_service_answers_with_its_own_figures(
    served: httpx.AsyncClient, owners: dict[str, ServiceRuntime], viewer: dict[str, str]
) -> None:
    for service in SERVICES:
        path = "/metrics" if service == "gateway" else f"/metrics/{service}"
        families = await scrape(served, path, viewer)
        assert value(families, "vigil_service_info", service=service) == 1, service
        for family in ("process_cpu_seconds_total", "process_resident_memory_bytes"):
            assert families[family]["samples"], (service, family)
        assert families["vigil_consumer_handling_seconds"]["type"] == "histogram"


async def test_a_posted_sample_moves_the_metrics_and_alerts_consumers(
    served: httpx.AsyncClient,
    client: httpx.AsyncClient,
    owners: dict[str, ServiceRuntime],
    viewer: dict[str, str],
) -> None:
    async def handled(service: str, consumer: str) -> float:
        families = await scrape(served, f"/metrics/{service}", viewer)
        return value(families, "vigil_consumer_messages_total", consumer=consumer, outcome="ok")

    before = {s: await handled(s, c) for s, c in (("metrics", "metrics-store"),
                                                   ("alerts", "alerts-evaluator"))}  # fmt: skip
    posted = await client.post(
        f"{API}/metrics", json=[{"name": "queue_depth", "value": 3.0, "labels": {"q": "a"}}]
    )
    assert posted.status_code == 202

    async def moved() -> bool:
        return (
            await handled("metrics", "metrics-store") > before["metrics"]
            and await handled("alerts", "alerts-evaluator") > before["alerts"]
        )

    await eventually(moved, within_s=10, what="consumer counters to move")
    gateway = await scrape(served, "/metrics", viewer)
    assert (
        value(
            gateway,
            "vigil_http_requests_total",
            method="POST",
            route=f"{API}/metrics",
            status="202",
        )
        >= 1
    )
    # the log as the gateway sees it: every service's durables, with their lag

    async def lag_seen() -> bool:
        now = await scrape(served, "/metrics", viewer)
        series = now["vigil_consumer_pending_messages"]["samples"]
        return any(dict(labels).get("consumer") == "alerts-evaluator" for _, labels in series)

    await eventually(lag_seen, within_s=10, what="the evaluator's lag in the gateway's figures")
    assert value(gateway, "vigil_http_request_duration_seconds_count",
                 method="GET", route="/metrics/{service}") >= 1  # fmt: skip


async def test_metrics_need_a_viewer(
    served: httpx.AsyncClient, owners: dict[str, ServiceRuntime], gateway: Gateway,
    client: httpx.AsyncClient,
) -> None:  # fmt: skip
    ingest = await headers_for(gateway.app, client, "ingest")
    for path in ("/metrics", "/metrics/alerts"):
        assert (await served.get(path)).status_code == 401
        wrong = {"Authorization": "Bearer vk_not-a-key"}
        assert (await served.get(path, headers=wrong)).status_code == 401
        assert (await served.get(path, headers=ingest)).status_code == 403


async def test_a_stopped_service_is_a_503_naming_it(
    served: httpx.AsyncClient, owners: dict[str, ServiceRuntime], viewer: dict[str, str]
) -> None:
    await owners["synthetic"].stop()
    response = await served.get("/metrics/synthetic", headers=viewer)
    assert response.status_code == 503
    assert "synthetic" in response.json()["detail"]
    assert (await served.get("/metrics/alerts", headers=viewer)).status_code == 200
    unknown = await served.get("/metrics/nosuch", headers=viewer)
    assert unknown.status_code == 404
    assert "nosuch" in unknown.json()["detail"]


async def test_an_alert_fired_shows_in_the_alerts_figures(
    served: httpx.AsyncClient,
    client: httpx.AsyncClient,
    owners: dict[str, ServiceRuntime],
    viewer: dict[str, str],
) -> None:
    before = await scrape(served, "/metrics/alerts", viewer)
    assert value(before, "vigil_alerts_open") == 0
    posted = await client.post(
        f"{API}/metrics",
        json=[{"name": "system_cpu_percent", "value": 97.0, "labels": {"host": "web-1"}}],
    )
    assert posted.status_code == 202

    async def fired() -> dict[str, Any] | None:
        families = await scrape(served, "/metrics/alerts", viewer)
        return families if value(families, "vigil_alerts_open") == 1 else None

    after = await eventually(fired, within_s=10, what="an open alert in the figures")
    assert value(after, "vigil_alerts_transitions_total", event="AlertFired") >= 1
    assert value(after, "vigil_alerts_evaluations_total", kind="threshold") > value(
        before, "vigil_alerts_evaluations_total", kind="threshold"
    )
