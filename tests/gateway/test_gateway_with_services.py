"""The gateway in front of the real owning services, all on one NATS server."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from aiohttp import web

from services.alerts.app import build as build_alerts
from services.gateway.app import Gateway
from services.incidents.app import build as build_incidents
from services.metrics.app import build as build_metrics
from services.synthetic.app import build as build_synthetic
from shared.natsserver import free_port
from shared.settings import Settings
from tests.conftest import RuntimeFactory
from tests.gateway.conftest import detail
from tests.gateway.identities import actor_of, headers_for
from tests.waiting import eventually

API = "/api/monitoring"


@pytest.fixture
async def owners(gateway_settings: Settings, start_service: RuntimeFactory) -> None:
    for build in (build_metrics, build_alerts, build_incidents, build_synthetic):
        await start_service(build(gateway_settings))


@pytest.fixture
async def shop() -> AsyncIterator[str]:
    """A site for synthetic checks to probe."""

    async def home(request: web.Request) -> web.Response:
        return web.Response(text="welcome")

    app = web.Application()
    app.router.add_get("/", home)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    yield f"http://127.0.0.1:{port}/"
    await runner.cleanup()


async def test_a_hot_sample_becomes_an_alert_and_an_incident_worked_through_the_api(
    client: httpx.AsyncClient, gateway: Gateway, owners: None
) -> None:
    posted = await client.post(
        f"{API}/metrics",
        json=[{"name": "system_cpu_percent", "value": 97.0, "labels": {"host": "web-1"}}],
    )
    assert posted.status_code == 202

    firing: list[dict[str, Any]] = []

    async def alert_fired() -> bool:
        firing[:] = (await client.get(f"{API}/alerts?status=firing")).json()["items"]
        return len(firing) == 1

    await eventually(alert_fired, within_s=10)
    alert = firing[0]
    assert (alert["rule"], alert["severity"], alert["value"]) == ("HighCPU", "critical", 97.0)

    incidents: list[dict[str, Any]] = []

    async def incident_opened() -> bool:
        incidents[:] = (await client.get(f"{API}/incidents")).json()["items"]
        return len(incidents) == 1

    await eventually(incident_opened, within_s=10)
    assert incidents[0]["alert_id"] == alert["id"]

    responder = await headers_for(gateway.app, client, "responder")
    acked = await client.post(f"{API}/alerts/{alert['id']}/ack", headers=responder)
    assert acked.status_code == 200
    assert (acked.json()["status"], acked.json()["acknowledged_by"]) == (
        "acknowledged",
        actor_of("responder"),
    )
    twice = await client.post(f"{API}/alerts/{alert['id']}/ack")
    assert twice.status_code == 200  # acknowledging twice is a no-op
    assert (twice.json()["acknowledged_by"], twice.json()["version"]) == (
        actor_of("responder"),
        acked.json()["version"],
    )

    identified = await client.put(
        f"{API}/incidents/{incidents[0]['id']}/status",
        json={"status": "identified", "message": "runaway worker"},
        headers=responder,
    )
    assert identified.status_code == 200
    assert identified.json()["status"] == "identified"

    stored = await client.get(f"{API}/metrics", params={"name": "system_cpu_percent"})
    assert stored.status_code == 200
    assert [s["value"] for s in stored.json()["samples"]] == [97.0]

    resolved = await client.post(f"{API}/alerts/{alert['id']}/resolve", headers=responder)
    assert (resolved.status_code, resolved.json()["status"]) == (200, "resolved")
    again = await client.post(f"{API}/alerts/{alert['id']}/resolve")
    assert again.status_code == 409
    assert "already resolved" in detail(again)

    missing = await client.post(f"{API}/alerts/no-such-alert/ack")
    assert missing.status_code == 404
    assert "no-such-alert" in detail(missing)


async def test_a_synthetic_check_runs_on_demand(
    client: httpx.AsyncClient, owners: None, shop: str
) -> None:
    created = await client.post(
        f"{API}/synthetic/checks", json={"name": "shop home", "url": shop, "interval": "1h"}
    )
    assert created.status_code == 201
    check_id = created.json()["id"]

    ran = await client.post(f"{API}/synthetic/checks/{check_id}/run")
    assert ran.status_code == 200
    assert (ran.json()["last_ok"], ran.json()["last_status_code"]) == (True, 200)
    results = (await client.get(f"{API}/synthetic/results", params={"check_id": check_id})).json()[
        "items"
    ]
    assert any(r["trigger"] == "manual" and r["ok"] for r in results)

    removed = await client.delete(f"{API}/synthetic/checks/{check_id}")
    assert removed.status_code == 204
    assert (await client.get(f"{API}/synthetic/checks")).json()["items"] == []
