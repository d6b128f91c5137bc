"""With ``VIGIL_METRICS_QUERY_URL`` set, the Prometheus API is answered by that store (a
real VictoriaMetrics here), through the real gateway, metrics service and NATS server:
what it holds is what the gateway answers, its errors keep their errorType."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import httpx
import pytest

from services.gateway.app import Gateway, build_gateway
from services.metrics.app import build as build_metrics
from shared.natsserver import free_port
from shared.promwire import REMOTE_WRITE_HEADERS, encode
from shared.settings import Settings
from tests.conftest import RuntimeFactory
from tests.gateway.identities import ADMIN, with_admin_key
from tests.metrics.remote.conftest import VictoriaMetrics, victoria  # noqa: F401
from tests.waiting import eventually

FORM = {"Content-Type": "application/x-www-form-urlencoded"}
NOW_S = int(time.time()) // 60 * 60 - 600  # whole minutes, in the recent past


@pytest.fixture
async def remote_only(victoria: VictoriaMetrics) -> VictoriaMetrics:  # noqa: F811
    """``far_load`` for hosts a and b, one point a minute for ten minutes: a = n, b = 10 n;
    written to the remote store only, so only it can answer about them."""
    body = encode(
        [
            (
                {"__name__": "far_load", "host": host},
                [(float(n * factor), (NOW_S + 60 * n) * 1000) for n in range(10)],
            )
            for host, factor in (("a", 1), ("b", 10))
        ]
    )
    async with httpx.AsyncClient() as http:
        response = await http.post(victoria.write_url, content=body, headers=REMOTE_WRITE_HEADERS)
    assert response.status_code == 204, response.text
    await eventually(lambda: victoria.export('{__name__="far_load"}'), what="samples stored")
    return victoria


@pytest.fixture
async def served(
    settings: Settings, remote_only: VictoriaMetrics, start_service: RuntimeFactory
) -> AsyncIterator[httpx.AsyncClient]:
    configured = with_admin_key(
        settings.model_copy(update={"port": free_port(), "metrics_query_url": remote_only.url})
    )
    await start_service(build_metrics(configured))
    gateway: Gateway = build_gateway(configured)
    await start_service(gateway.runtime)
    await eventually(lambda: gateway.http.started)
    base = f"http://127.0.0.1:{configured.port}"
    async with httpx.AsyncClient(base_url=base, headers=ADMIN, timeout=30.0) as http:
        yield http


async def test_queries_are_answered_by_the_remote_store(served: httpx.AsyncClient) -> None:
    instant = await served.post(
        "/api/v1/query", data={"query": "sum(far_load)", "time": str(NOW_S + 540)}, headers=FORM
    )
    assert instant.status_code == 200, instant.text
    assert instant.json()["data"]["result"] == [{"metric": {}, "value": [NOW_S + 540, "99"]}]

    ranged = await served.post(
        "/api/v1/query_range",
        data={
            "query": 'far_load{host="b"}',
            "start": str(NOW_S),
            "end": str(NOW_S + 240),
            "step": "60",
        },
        headers=FORM,
    )
    assert ranged.status_code == 200, ranged.text
    [series] = ranged.json()["data"]["result"]
    assert series["values"] == [[NOW_S + 60 * n, str(10 * n)] for n in range(5)]

    window = {"start": str(NOW_S - 60), "end": str(NOW_S + 600)}
    hosts = await served.get("/api/v1/label/host/values", params={**window, "match[]": "far_load"})
    assert hosts.json()["data"] == ["a", "b"]
    found = await served.get("/api/v1/series", params={**window, "match[]": "far_load"})
    assert sorted(s["host"] for s in found.json()["data"]) == ["a", "b"]
    everything = await served.get("/api/v1/label/__name__/values")  # no start, no end
    assert everything.status_code == 200, everything.text
    assert "far_load" in everything.json()["data"]


async def test_the_remote_stores_errors_keep_their_type(served: httpx.AsyncClient) -> None:
    """VictoriaMetrics calls a query it cannot parse an execution error (Prometheus says
    bad_data): the gateway answers what the store said, with the status of its type."""
    response = await served.get("/api/v1/query", params={"query": "sum(far_load"})
    assert response.status_code == 422, response.text
    body = response.json()
    assert (body["status"], body["errorType"]) == ("error", "execution")
    assert "sum(far_load" in body["error"]
