"""The requests Grafana's Prometheus data source sends, answered by the real gateway over
HTTP, the real metrics service (PromQL engine on the DuckDB store) and a real NATS server,
after samples went in through the ingest API.

The requests are those of Grafana's Prometheus client (``pkg/promlib``): the health check
(``1+1`` at an instant, then buildinfo), panels as a POSTed form to ``query_range``
(start/end in Unix seconds, step in seconds), the label browser (``labels``,
``label/__name__/values``, ``label/<name>/values`` and ``series`` with ``match[]``, all
with ``start``/``end``), metadata and exemplars.
"""

from __future__ import annotations

import math
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from services.gateway.app import Gateway
from services.metrics.app import build as build_metrics
from shared.settings import Settings
from tests.conftest import RuntimeFactory
from tests.gateway.identities import ADMIN, headers_for
from tests.waiting import eventually

FORM = {"Content-Type": "application/x-www-form-urlencoded"}
STEP_S = 15
POINTS = 41  # 10 minutes of samples, every 15 s
# http_requests_total grows by this much per 15 s scrape, per code: rate = growth / 15
GROWTH = {"200": 30.0, "500": 3.0}


@pytest.fixture
async def served(
    gateway: Gateway, gateway_settings: Settings, start_service: RuntimeFactory
) -> AsyncIterator[httpx.AsyncClient]:
    await start_service(build_metrics(gateway_settings))
    await eventually(lambda: gateway.http.started)
    base = f"http://127.0.0.1:{gateway.runtime.settings.port}"
    async with httpx.AsyncClient(base_url=base, headers=ADMIN, timeout=30.0) as http:
        yield http


@pytest.fixture
async def samples(served: httpx.AsyncClient, gateway: Gateway) -> int:
    """Ten minutes of a counter per status code and a gauge, sent with an ingest key;
    returns the last sample's time (Unix seconds, a multiple of the step)."""
    ingest = await headers_for(gateway.app, served, "ingest")
    last = (int(time.time()) // STEP_S) * STEP_S - STEP_S
    batch: list[dict[str, Any]] = []
    for i in range(POINTS):
        at = last - (POINTS - 1 - i) * STEP_S
        for code, growth in GROWTH.items():
            batch.append(
                {
                    "name": "http_requests_total",
                    "value": growth * i,
                    "timestamp": at,
                    "labels": {"job": "api", "instance": "web-1", "code": code},
                }
            )
        batch.append(
            {
                "name": "node_load1",
                "value": float(i % 4),
                "timestamp": at,
                "labels": {"instance": "web-1"},
            }
        )
    posted = await served.post("/api/monitoring/metrics", json=batch, headers=ingest)
    assert posted.status_code == 202, posted.text

    async def stored() -> bool:
        stats = (await served.get("/api/monitoring/metrics/stats")).json()
        return bool(stats["stored_samples"] == len(batch) and stats["backlog"] == 0)

    await eventually(stored)
    return last


def success(response: httpx.Response) -> Any:
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "success", body
    return body["data"]


def prom_error(response: httpx.Response, status: int, error_type: str) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert (body["status"], body["errorType"]) == ("error", error_type), body
    return str(body["error"])


async def test_grafanas_health_check(served: httpx.AsyncClient) -> None:
    now = int(time.time())
    data = success(await served.get("/api/v1/query", params={"query": "1+1", "time": now}))
    assert data == {"resultType": "scalar", "result": [now, "2"]}
    info = success(await served.get("/api/v1/status/buildinfo"))
    assert int(info["version"].split(".")[0]) >= 2


async def test_a_panel_query_range_posted_as_a_form(
    served: httpx.AsyncClient, samples: int
) -> None:
    start, end = samples - 300, samples
    body = {
        "query": 'sum by (code) (rate(http_requests_total{job="api"}[1m]))',
        "start": str(start),
        "end": str(end),
        "step": str(STEP_S),
    }
    data = success(await served.post("/api/v1/query_range", data=body, headers=FORM))
    assert data["resultType"] == "matrix"
    by_code = {series["metric"]["code"]: series["values"] for series in data["result"]}
    assert set(by_code) == set(GROWTH)
    for series in data["result"]:
        assert series["metric"] == {"code": series["metric"]["code"]}  # sum drops the rest
    for code, values in by_code.items():
        assert [t for t, _ in values] == list(range(start, end + 1, STEP_S))
        for _, value in values:
            assert isinstance(value, str)
            assert math.isclose(float(value), GROWTH[code] / STEP_S, rel_tol=1e-9), (code, value)


async def test_an_instant_query_at_a_time(served: httpx.AsyncClient, samples: int) -> None:
    at = samples - STEP_S
    data = success(
        await served.post(
            "/api/v1/query", data={"query": "node_load1", "time": str(at)}, headers=FORM
        )
    )
    assert data["resultType"] == "vector"
    [point] = data["result"]
    assert point["metric"] == {"__name__": "node_load1", "instance": "web-1"}
    assert point["value"] == [at, str((POINTS - 2) % 4)]  # as Go prints 3.0: "3"
    rfc3339 = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(at))
    same = success(
        await served.get("/api/v1/query", params={"query": "node_load1", "time": rfc3339})
    )
    assert same == data


async def test_the_label_browser(served: httpx.AsyncClient, samples: int) -> None:
    window = {"start": str(samples - 3600), "end": str(samples + 60)}
    labels = success(await served.get("/api/v1/labels", params=window))
    assert labels == ["__name__", "code", "instance", "job"]
    names = success(await served.get("/api/v1/label/__name__/values", params=window))
    assert names == ["http_requests_total", "node_load1"]
    codes = success(
        await served.get(
            "/api/v1/label/code/values",
            params={**window, "match[]": 'http_requests_total{job="api"}'},
        )
    )
    assert codes == ["200", "500"]
    series = success(
        await served.get(
            "/api/v1/series", params={**window, "match[]": ["node_load1", '{code="500"}']}
        )
    )
    assert sorted(series, key=lambda s: s["__name__"]) == [
        {"__name__": "http_requests_total", "code": "500", "instance": "web-1", "job": "api"},
        {"__name__": "node_load1", "instance": "web-1"},
    ]
    only_load = success(
        await served.post("/api/v1/labels", data={**window, "match[]": "node_load1"}, headers=FORM)
    )
    assert only_load == ["__name__", "instance"]
    everything = success(await served.get("/api/v1/label/__name__/values"))  # no window
    assert everything == names
    long_ago = {"start": str(samples - 7200), "end": str(samples - 3600)}
    assert (
        success(await served.get("/api/v1/series", params={**long_ago, "match[]": "node_load1"}))
        == []
    )


async def test_metadata_and_exemplars(served: httpx.AsyncClient, samples: int) -> None:
    assert success(await served.get("/api/v1/metadata")) == {}
    exemplars = await served.post(
        "/api/v1/query_exemplars",
        data={"query": "node_load1", "start": str(samples - 600), "end": str(samples)},
        headers=FORM,
    )
    assert success(exemplars) == []


async def test_query_errors_in_prometheus_envelopes(
    served: httpx.AsyncClient, samples: int
) -> None:
    parse = await served.get("/api/v1/query", params={"query": "sum(rate(x[5m]"})
    assert prom_error(parse, 400, "bad_data")
    selector = await served.get("/api/v1/series", params={"match[]": "rate(x[5m])"})
    assert 'invalid parameter "match[]"' in prom_error(selector, 400, "bad_data")
    empty = await served.get("/api/v1/series", params={"match[]": '{job=~".*"}'})
    assert "at least one non-empty matcher" in prom_error(empty, 400, "bad_data")
    slow = await served.post(
        "/api/v1/query_range",
        data={
            "query": "sum by (code) (rate(http_requests_total[5m]))",
            "start": str(samples - 10_999),
            "end": str(samples),
            "step": "1",
            "timeout": "1ms",
        },
        headers=FORM,
    )
    assert "timed out" in prom_error(slow, 503, "timeout")


async def test_dashboard_chart_aggregates_per_step(served: httpx.AsyncClient, samples: int) -> None:
    start, end = (samples - 600) // 60 * 60, samples
    response = await served.get(
        "/api/monitoring/metrics",
        params={
            "name": "http_requests_total",
            "start": start,
            "end": end,
            "step": 60,
            "aggregation": "max",
            "by": "code",
        },
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["step"], body["aggregation"], body["by"]) == (60, "max", ["code"])
    by_code = {s["labels"]["code"]: s["points"] for s in body["series"]}
    assert set(by_code) == set(GROWTH)
    first = samples - (POINTS - 1) * STEP_S
    for code, points in by_code.items():
        for bucket, value in points:
            # the largest counter value in [bucket, bucket + 60): its last sample's
            last_in_bucket = max(
                t for t in range(first, samples + 1, STEP_S) if bucket <= t < bucket + 60
            )
            assert value == GROWTH[code] * (last_in_bucket - first) / STEP_S, (code, bucket)
    raw = await served.get("/api/monitoring/metrics", params={"name": "node_load1", "limit": 5})
    assert len(raw.json()["samples"]) == 5


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"aggregation": "p95", "step": "60"}, "aggregation"),
        ({"step": "0"}, "step"),
        ({"step": "x"}, "step"),
        ({"step": "60", "start": "100", "end": "50"}, "end"),
        ({"step": "0.001", "start": "0", "end": "100000"}, "step"),
        ({"by": "code"}, "name"),
        ({"step": "1.6e308", "end": "86400", "aggregation": "p50"}, "step"),
        ({"step": "60", "start": "0", "end": "1e300"}, "end"),
        ({"step": "60", "start": "1e300", "end": "86400"}, "start"),
    ],
)
async def test_a_bad_chart_parameter_is_4xx_naming_it(
    served: httpx.AsyncClient, params: dict[str, str], field: str
) -> None:
    query = {"name": "http_requests_total", **params} if field != "name" else params
    response = await served.get("/api/monitoring/metrics", params=query)
    assert response.status_code == 422, response.text
    assert response.json()["field"] == field
