"""A sample crosses a threshold and an on-call engineer is paged: the whole path on real parts."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil
import pytest

from shared.bus import connect
from shared.natsauth import client_credentials
from tests.system.conftest import VigilProcess, WebhookReceiver, shut_down, start_vigil

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]


async def eventually(fetch: Any, predicate: Any, timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = await fetch()
        if predicate(value):
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition never held; last value: {value}")
        await asyncio.sleep(0.1)


async def test_critical_sample_pages_opens_incident_and_resolves(
    vigil_system: VigilProcess, webhook_receiver: WebhookReceiver
) -> None:
    async with vigil_system.client() as client:
        health = await eventually(
            lambda: client.get("/api/monitoring/health/system"),
            lambda r: (
                r.status_code == 200
                and all(s["status"] == "up" for s in r.json()["services"].values())
            ),
        )
        assert set(health.json()["services"]) == {
            "metrics",
            "alerts",
            "incidents",
            "synthetic",
            "notifier",
            "gateway",
        }

        labels = {"region": "eu", "host": "web-1"}
        response = await client.post(
            "/api/monitoring/metrics",
            json=[{"name": "checkout_latency_ms", "value": 1500.0, "labels": labels}],
        )
        assert response.status_code == 202, response.text

        await webhook_receiver.wait_for(
            lambda: (
                webhook_receiver.of_type("AlertFired")
                and webhook_receiver.of_type("IncidentOpened")
            )
        )
        fired = webhook_receiver.of_type("AlertFired")[0]
        assert fired["alert"]["severity"] == "critical"
        assert fired["alert"]["labels"] == labels
        assert webhook_receiver.bad_signatures == 0

        # Vigil's own rules may fire too on a loaded machine: look at the one sent
        firing = await eventually(
            lambda: client.get("/api/monitoring/alerts", params={"status": "firing"}),
            lambda r: any(a["rule"] == "CheckoutLatency" for a in _items(r.json(), "alerts")),
        )
        alerts = [a for a in _items(firing.json(), "alerts") if a["rule"] == "CheckoutLatency"]
        assert len(alerts) == 1
        alert_id = alerts[0]["id"]

        incidents = await eventually(
            lambda: client.get("/api/monitoring/incidents"),
            lambda r: len(_items(r.json(), "incidents")) == 1,
        )
        incident = _items(incidents.json(), "incidents")[0]
        assert incident["severity"] == "critical"
        assert incident["status"] == "investigating"

        stored = await eventually(
            lambda: client.get("/api/monitoring/metrics", params={"name": "checkout_latency_ms"}),
            lambda r: r.status_code == 200 and len(_items(r.json(), "samples")) == 1,
        )
        assert _items(stored.json(), "samples")[0]["value"] == 1500.0

        response = await client.post(
            "/api/monitoring/metrics",
            json=[{"name": "checkout_latency_ms", "value": 120.0, "labels": labels}],
        )
        assert response.status_code == 202
        await webhook_receiver.wait_for(
            lambda: (
                webhook_receiver.of_type("AlertResolved")
                and webhook_receiver.of_type("IncidentResolved")
            )
        )
        alert = await eventually(
            lambda: client.get(f"/api/monitoring/alerts/{alert_id}"),
            lambda r: r.json()["status"] == "resolved",
        )
        assert alert.json()["severity"] == "critical"

    kinds = sorted(p["event"] for p in webhook_receiver.received)
    assert kinds == ["AlertFired", "AlertResolved", "IncidentOpened", "IncidentResolved"]
    delivery_ids = [h.get("X-Vigil-Delivery") for h in webhook_receiver.headers]
    assert len(set(delivery_ids)) == len(delivery_ids) == 4


async def test_sigterm_stops_everything_within_seconds(vigil_up: VigilProcess) -> None:
    tree = vigil_up.tree()
    assert len(tree) >= 8  # supervisor, nats-server, six services
    elapsed = vigil_up.stop()
    assert elapsed < 10
    assert not [p for p in tree if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]


async def test_bad_batch_is_rejected_whole(vigil_up: VigilProcess) -> None:
    async with vigil_up.client() as client:
        response = await client.post(
            "/api/monitoring/metrics",
            json=[
                {"name": "checkout_latency_ms", "value": 2000.0},
                {"name": "checkout_latency_ms", "value": "high"},
            ],
        )
        assert response.status_code == 422
        assert "[1]" in response.text and "value" in response.text
        await asyncio.sleep(1.0)  # give a wrongly accepted sample time to show up
        stored = await client.get("/api/monitoring/metrics", params={"name": "checkout_latency_ms"})
        assert _items(stored.json(), "samples") == []


def _items(body: Any, key: str) -> list[Any]:
    """A page's items (lists answer {"items", "next_cursor"}), or a query's ``key``."""
    return list(body["items"] if "items" in body else body[key])


async def test_malformed_bus_message_is_dead_lettered_and_paging_goes_on(
    vigil_up: VigilProcess, webhook_receiver: WebhookReceiver
) -> None:
    nats_line = next(line for line in vigil_up.lines if "nats ready" in line)
    credentials = client_credentials(vigil_up.data_dir, "agent")  # a host sample source
    nc = await connect(nats_line.split("(")[1].rstrip(")"), "test-producer", credentials)
    try:
        await nc.jetstream().publish("metrics.samples.broken", b'{"type": "SamplesIngested", "samp')
    finally:
        await nc.close()

    async with vigil_up.client() as client:
        letters = await eventually(
            lambda: client.get("/api/monitoring/deadletters"),
            lambda r: (
                {d["consumer"] for d in _items(r.json(), "items")}
                == {"metrics-store", "alerts-evaluator"}
            ),
        )
        assert {d["subject"] for d in _items(letters.json(), "items")} == {"metrics.samples.broken"}
        response = await client.post(
            "/api/monitoring/metrics",
            json=[{"name": "checkout_latency_ms", "value": 4000.0, "labels": {"host": "after"}}],
        )
        assert response.status_code == 202
    await webhook_receiver.wait_for(lambda: webhook_receiver.of_type("AlertFired"))
    assert webhook_receiver.of_type("AlertFired")[0]["alert"]["labels"] == {"host": "after"}


async def test_rebuild_from_the_log_restores_the_same_views(
    tmp_path: Path, webhook_receiver: WebhookReceiver
) -> None:
    vigil = start_vigil(tmp_path, webhook_receiver, {})
    try:
        async with vigil.client() as client:
            response = await client.post(
                "/api/monitoring/metrics",
                json=[{"name": "checkout_latency_ms", "value": 3000.0, "labels": {"host": "r"}}],
            )
            assert response.status_code == 202
            await eventually(
                lambda: client.get("/api/monitoring/incidents"),
                lambda r: len(_items(r.json(), "incidents")) == 1,
            )
            before = {
                path: (await client.get(path)).json()
                for path in ("/api/monitoring/alerts", "/api/monitoring/incidents")
            }
    finally:
        shut_down(vigil)
    for stale in (tmp_path / "data").glob("gateway.db*"):
        stale.unlink()  # drop the read model entirely
    gateway_db = tmp_path / "data" / "gateway.db"
    command = [sys.executable, "-m", "services.cli", "rebuild", "gateway"]
    rebuilt = await asyncio.to_thread(
        subprocess.run,
        [*command, "--data-dir", str(tmp_path / "data")],
        capture_output=True,
        text=True,
        timeout=60,
        env={k: v for k, v in os.environ.items() if k not in ("NATS_URL", "DATABASE_URL")},
    )
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert gateway_db.exists()

    vigil = start_vigil(tmp_path, webhook_receiver, {})
    try:
        async with vigil.client() as client:
            after = {path: (await client.get(path)).json() for path in before}
    finally:
        shut_down(vigil)
    assert after == before
