"""GET /api/monitoring/health/checks: each component with its status and why — NATS and
JetStream storage, each service's database, each registered consumer's lag, the disk,
the synthetic checks — from a real gateway, real services and real NATS."""

from __future__ import annotations

from typing import Any

import httpx
import orjson

from services.gateway.app import Gateway
from services.gateway.health.liveness import bounded_report
from services.metrics.app import build as build_metrics
from shared import subjects
from shared.bus import EventBus
from shared.db import create_engine
from shared.durables import DURABLES
from shared.events import CheckConfigured, CheckRunRecorded
from shared.heartbeat import DatabaseProbe
from shared.settings import Settings
from tests.conftest import RuntimeFactory
from tests.waiting import eventually

URL = "/api/monitoring/health/checks"


async def components(client: httpx.AsyncClient) -> dict[str, dict[str, Any]]:
    response = await client.get(URL)
    assert response.status_code == 200, response.text
    return {c["name"]: c for c in response.json()["components"]}


async def test_each_component_is_reported_with_its_status_and_detail(
    client: httpx.AsyncClient,
    gateway: Gateway,
    gateway_settings: Settings,
    start_service: RuntimeFactory,
    bus: EventBus,
) -> None:
    await start_service(build_metrics(gateway_settings))
    configured = CheckConfigured(aggregate_id="shop", name="shop", url="http://shop.test/")
    await bus.publish(subjects.check_definition("shop"), configured)
    failed = CheckRunRecorded(
        aggregate_id="shop",
        name="shop",
        ok=False,
        status_code=503,
        latency_ms=3.0,
        error="HTTP 503",
        consecutive_failures=1,
        trigger="schedule",
    )
    seq = await bus.publish(subjects.check_result("shop"), failed)
    await eventually(lambda: gateway.state.progress.applied.get("gateway-synthetic", 0) >= seq)

    found: dict[str, dict[str, Any]] = {}

    async def databases_reported() -> bool:
        found.update(await components(client))
        return all(found[f"database:{s}"]["status"] == "ok" for s in ("gateway", "metrics"))

    await eventually(databases_reported, what="the gateway's and metrics' databases reported")

    nats = found["nats"]
    assert nats["status"] == "ok", nats
    assert nats["facts"]["connected"] is True
    assert nats["facts"]["storage_used_bytes"] > 0
    assert nats["facts"]["storage_free_bytes"] > 0
    assert found["database:metrics"]["detail"].startswith("answered in")
    # the notifier never started: its database is not known, and that is said
    notifier_db = found["database:notifier"]
    assert (notifier_db["status"], notifier_db["detail"]) == (
        "unknown",
        "notifier is not running, so it reports no database",
    )
    # every registered consumer is listed; those of services not started are not there yet
    store = found["consumer:metrics-store"]
    assert (store["status"], store["facts"]["service"]) == ("ok", "metrics")
    assert isinstance(store["facts"]["lag"], int)
    evaluator = found["consumer:alerts-evaluator"]
    assert evaluator["status"] == "unknown"
    assert "alerts has not started it" in evaluator["detail"]
    assert {f"consumer:{d.name}" for d in DURABLES} <= set(found)
    disk = found["disk"]
    assert disk["status"] == "ok" and disk["facts"]["free_bytes"] > 0
    synthetic = found["synthetic"]
    assert synthetic["status"] == "degraded"
    assert synthetic["facts"]["failing"] == ["shop"]
    assert "(failing: shop)" in synthetic["detail"]

    overall = (await client.get(URL)).json()["status"]
    assert overall == "degraded"  # unknowns and a failing check, nothing failing


async def test_a_database_reported_down_makes_its_component_fail_with_the_cause(
    client: httpx.AsyncClient, gateway: Gateway, bus: EventBus
) -> None:
    beat = {
        "service": "notifier",
        "host": "h",
        "pid": 7,
        "database": {"ok": False, "detail": "OperationalError: database is locked"},
    }

    async def reported() -> bool:
        await bus.nc.publish(subjects.heartbeat("notifier"), orjson.dumps(beat))
        database = (await components(client))["database:notifier"]
        return bool(database["status"] == "failing")

    await eventually(reported, what="the notifier's database reported failing")
    found = await components(client)
    assert found["database:notifier"]["detail"] == "OperationalError: database is locked"
    assert (await client.get(URL)).json()["status"] == "failing"


async def test_the_database_probe_says_why_a_database_does_not_answer(tmp_path: Any) -> None:
    good = DatabaseProbe(create_engine(f"sqlite+aiosqlite:///{tmp_path / 'ok.db'}"))
    await good.check()
    assert good.report()["database"]["ok"] is True
    unreachable = DatabaseProbe(
        create_engine("postgresql+psycopg://postgres@127.0.0.1:1/vigil_nowhere")
    )
    await unreachable.check()
    report = unreachable.report()["database"]
    assert report["ok"] is False
    assert report["detail"].startswith("OperationalError")
    assert "postgres@" not in report["detail"]
    await good.engine.dispose()
    await unreachable.engine.dispose()
    # what a heartbeat says is kept only in its known shape
    kept = bounded_report({"database": {"ok": False, "detail": "x" * 5000, "extra": [1]}})
    assert kept["database"] == {"ok": False, "detail": "x" * 300}
    assert "database" not in bounded_report({"database": {"ok": "yes"}})
