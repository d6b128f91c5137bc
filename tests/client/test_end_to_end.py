"""A FastAPI app with the middleware makes the seed's default rules fire in a running Vigil.

Vigil starts as a user starts it (``vigil up``) with no rules of its own in the config, so
the defaults apply: HighErrorRate on ``app_error_rate_percent`` and SlowResponses on
``app_response_time_ms``. The app, served by uvicorn, pushes with an ingest key.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from vigil_client import VigilASGIMiddleware, VigilClient

from tests.client.servers import uvicorn_serving
from tests.system.conftest import (
    WEBHOOK_SECRET,
    VigilProcess,
    WebhookReceiver,
    shut_down,
    start_vigil,
    webhook_receiver,
)

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]
__all__ = ["webhook_receiver"]  # the fixture, used here

SLOW_S = 1.2


@pytest.fixture
def vigil_defaults(tmp_path: Path, webhook_receiver: WebhookReceiver) -> Iterator[VigilProcess]:
    """``vigil up`` with the default rules and a webhook channel to ``webhook_receiver``."""
    config = tmp_path / "vigil.yaml"
    config.write_text(
        f"""
channels:
  - name: ops-webhook
    type: webhook
    url: http://127.0.0.1:{webhook_receiver.port}/hook
    secret: {WEBHOOK_SECRET}
"""
    )
    vigil = start_vigil(tmp_path, webhook_receiver, {}, config=config)
    try:
        yield vigil
    finally:
        shut_down(vigil)


def shop(client: VigilClient) -> FastAPI:
    app = FastAPI()
    app.add_middleware(VigilASGIMiddleware, client=client)
    calls = {"checkout": 0}

    @app.post("/checkout/{cart_id}")
    async def checkout(cart_id: str) -> dict[str, str]:
        calls["checkout"] += 1
        if calls["checkout"] % 2 == 0:
            raise RuntimeError("payment provider down")
        return {"cart": cart_id}

    @app.get("/search")
    async def search() -> list[str]:
        await asyncio.sleep(SLOW_S)
        return []

    @app.get("/health")
    async def health() -> str:
        return "ok"

    return app


async def firing(api: httpx.AsyncClient, rule: str, route: str) -> dict[str, Any] | None:
    response = await api.get("/api/monitoring/alerts", params={"status": "firing"})
    assert response.status_code == 200, response.text
    found = [
        a
        for a in response.json()["items"]
        if a["rule"] == rule and a["labels"].get("route") == route
    ]
    return found[0] if found else None


async def eventually(probe: Any, timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = await probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("the condition never held")
        await asyncio.sleep(0.25)


async def test_default_rules_fire_from_a_fastapi_app(
    vigil_defaults: VigilProcess, webhook_receiver: WebhookReceiver
) -> None:
    async with vigil_defaults.client() as api:
        created = await api.post(
            "/api/monitoring/keys", json={"name": "shop-app", "role": "ingest"}
        )
        assert created.status_code in (200, 201), created.text
        ingest_key = created.json()["key"]
        client = VigilClient(
            vigil_defaults.url, ingest_key, flush_interval_s=1.0, labels={"service": "shop"}
        )
        with uvicorn_serving(shop(client)) as url:
            async with httpx.AsyncClient(
                base_url=url, limits=httpx.Limits(max_keepalive_connections=0), timeout=30
            ) as app:
                statuses = [(await app.post(f"/checkout/c{n}")).status_code for n in range(10)]
                assert statuses.count(500) == 5
                slow = await asyncio.gather(*(app.get("/search") for _ in range(3)))
                assert [r.status_code for r in slow] == [200] * 3
                assert (await app.get("/health")).status_code == 200

                errors = await eventually(
                    lambda: firing(api, "HighErrorRate", "/checkout/{cart_id}")
                )
                slowness = await eventually(lambda: firing(api, "SlowResponses", "/search"))
                assert errors["severity"] == "critical" and errors["value"] >= 10
                assert errors["labels"]["service"] == "shop"
                assert slowness["severity"] == "critical" and slowness["value"] >= 1000
                assert await firing(api, "HighErrorRate", "/health") is None

                # the route goes quiet: the next interval says nothing fails there
                await eventually(lambda: _status_is(api, errors["id"], "resolved"))
        assert client.stats().rejected_samples == 0

        await webhook_receiver.wait_for(
            lambda: (
                {"HighErrorRate", "SlowResponses"}
                <= {p["alert"]["rule"] for p in webhook_receiver.of_type("AlertFired")}
            ),
            timeout=30,
        )
        stored = await api.get(
            "/api/monitoring/metrics",
            params={"name": "app_requests_total", "labels": "route=/search,service=shop"},
        )
        assert stored.status_code == 200
        body = stored.json()
        assert any(s["value"] == 3 for s in body.get("items", body.get("samples", [])))


async def _status_is(api: httpx.AsyncClient, alert_id: str, status: str) -> bool:
    response = await api.get(f"/api/monitoring/alerts/{alert_id}")
    return bool(response.status_code == 200 and response.json()["status"] == status)
