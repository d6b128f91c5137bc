"""Rules with matchers, overrides, windows, ratios, absence and annotations over HTTP:
made, read back as written, and judging the next samples."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from services.alerts.app import build as build_alerts
from services.gateway.app import Gateway
from shared import subjects
from shared.bus import EventBus
from shared.config import VigilConfig
from shared.events import AlertFired, Sample, SamplesIngested
from shared.settings import Settings
from tests.conftest import RuntimeFactory
from tests.gateway.identities import ADMIN
from tests.waiting import eventually

RULES = "/api/monitoring/alerts/rules"
ERROR_RATE: dict[str, Any] = {
    "name": "HighErrorRate",
    "ratio": {
        "numerator": "http_errors_total",
        "denominator": "http_requests_total",
        "over": "5m",
        "on": ["service"],
        "scale": 100,
    },
    "warning": 5,
    "critical": 10,
    "matchers": ["env!=dev"],
    "annotations": {
        "summary": "{{ labels.service }} fails {{ value | round(1) }} % of requests",
        "runbook_url": "https://runbooks.example/errors",
    },
    "set_labels": {"team": "web"},
}
SILENT: dict[str, Any] = {"name": "AgentSilent", "metric": "up", "absent_for": "10m"}
DISK: dict[str, Any] = {
    "name": "DiskFull",
    "metric": "disk",
    "function": "max",
    "window": "5m",
    "warning": 80,
    "overrides": [{"matchers": ['mount="/var"'], "warning": 60}],
}


def without_nulls(value: Any) -> Any:
    """The answer spells out fields left at their default (null); the body did not."""
    if isinstance(value, dict):
        return {k: without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [without_nulls(v) for v in value]
    return value


@pytest.fixture
async def http(
    gateway: Gateway, gateway_settings: Settings, start_service: RuntimeFactory
) -> AsyncIterator[httpx.AsyncClient]:
    await start_service(build_alerts(gateway_settings, VigilConfig(rules=[])))
    transport = httpx.ASGITransport(app=gateway.app)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://localhost", headers=ADMIN
    ) as client:
        yield client


async def test_new_rule_fields_read_back_as_written_and_judge_samples(
    http: httpx.AsyncClient, bus: EventBus
) -> None:
    for body in (ERROR_RATE, SILENT, DISK):
        created = await http.post(RULES, json=body)
        assert created.status_code == 201, created.text
        shown = {k: v for k, v in created.json().items() if k in body}
        assert without_nulls(shown) == body
        assert created.json()["metric"] == body.get("metric", "http_errors_total")

    now = time.time()
    for at, errors, requests in ((now - 60, 0, 0), (now, 80, 1000)):
        samples = [
            Sample(name="http_errors_total", value=errors, labels={"service": "api"}),
            Sample(name="http_requests_total", value=requests, labels={"service": "api"}),
        ]
        batch = SamplesIngested(aggregate_id="app", samples=samples, received_at=at)
        await bus.publish(subjects.samples("app"), batch)

    async def fired() -> list[AlertFired]:
        return [r.event async for r in bus.replay("ALERTS") if isinstance(r.event, AlertFired)]

    (alert,) = await eventually(fired, what="the error-rate rule to fire")
    assert (alert.rule, alert.severity, alert.value) == ("HighErrorRate", "warning", 8.0)
    assert alert.labels == {"service": "api", "team": "web"}
    assert alert.annotations["summary"] == "api fails 8.0 % of requests"


async def test_a_bad_field_is_named_in_the_problem(http: httpx.AsyncClient) -> None:
    refused = await http.put(f"{RULES}/DiskFull", json={**DISK, "window": "2d"})
    assert refused.status_code == 422
    assert refused.json()["field"] == "window"
    assert refused.json()["detail"].startswith("window: ")
