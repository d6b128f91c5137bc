"""Log rules and incidents through the HTTP API, with the metrics (log store), alerts and
incidents services behind the gateway on one nats-server: lines posted fire a log alert,
its incident shows the lines around it, explain shows the count, and log ingest waits
while the log rules' consumer is far behind."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest
from nats.js.api import AckPolicy, ConsumerConfig

from services.alerts.app import build as build_alerts
from services.incidents.app import build as build_incidents
from services.metrics.app import build as build_metrics
from services.metrics.logs.store import STORE_PROJECTION
from shared import subjects
from shared.bus import EventBus
from shared.config import VigilConfig
from shared.heartbeat import heartbeat_payload
from shared.settings import Settings
from tests.conftest import RuntimeFactory
from tests.gateway.backlog import gateway_behind
from tests.gateway.conftest import detail
from tests.gateway.identities import ADMIN
from tests.waiting import caught_up, eventually

API = "/api/monitoring"
RULE = {
    "name": "ApiErrors",
    "logs": {"level": ["error"], "service": "api", "by": ["host"]},
    "window": "5m",
    "critical": 3,
}


@pytest.fixture
async def owners(gateway_settings: Settings, start_service: RuntimeFactory) -> None:
    await start_service(build_metrics(gateway_settings))
    await start_service(
        build_alerts(gateway_settings, VigilConfig.model_validate({"rules": [RULE]}))
    )
    await start_service(build_incidents(gateway_settings))


def entry(
    message: str, at: float, level: str = "error", service: str = "api", **labels: str
) -> dict[str, Any]:
    return {
        "message": message,
        "timestamp": at,
        "level": level,
        "service": service,
        "labels": labels,
    }


async def post(client: httpx.AsyncClient, *entries: dict[str, Any]) -> None:
    response = await client.post(f"{API}/logs", json=list(entries))
    assert response.status_code == 202, response.text


async def messages(client: httpx.AsyncClient, incident_id: str, **params: Any) -> dict[str, Any]:
    response = await client.get(f"{API}/incidents/{incident_id}/logs", params=params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_an_incident_of_a_log_alert_shows_the_lines_of_its_service_and_host(
    client: httpx.AsyncClient, bus: EventBus, owners: None
) -> None:
    now = time.time()
    await post(
        client,
        entry("db timeout 1", now - 3, host="web-1"),
        entry("db timeout 2", now - 2, host="web-1"),
        entry("slow query", now - 600, level="info", host="web-1"),  # 10 min before
        entry("ancient", now - 1200, host="web-1"),  # 20 min before: out of range
        entry("db timeout elsewhere", now - 2, host="web-2"),  # another host
        entry("web failed", now - 2, service="web", host="web-1"),  # another service
    )
    await post(client, entry("db timeout 3", now - 1, host="web-1"))

    incidents: list[dict[str, Any]] = []

    async def opened() -> bool:
        incidents[:] = (await client.get(f"{API}/incidents")).json()["items"]
        return len(incidents) == 1

    await eventually(opened, what="the log alert's incident")
    [incident] = incidents

    async def projected() -> dict[str, Any] | None:
        found = await client.get(f"{API}/alerts/{incident['alert_id']}")
        return found.json() if found.status_code == 200 else None

    alert = await eventually(projected, what="the alert in the read model")
    assert (alert["rule"], alert["severity"], alert["value"]) == ("ApiErrors", "critical", 3)
    assert alert["labels"] == {"service": "api", "host": "web-1"}

    explained = await client.get(
        f"{API}/explain", params={"rule": "ApiErrors", "labels": "service=api,host=web-1"}
    )
    assert explained.status_code == 200, explained.text
    counted = explained.json()["logs"]
    assert (counted["count"], counted["window_s"], counted["critical"]) == (3, 300, 3)
    assert counted["by"] == ["host"]
    latest = explained.json()["alert"]
    assert latest["alert_id"] == incident["alert_id"]
    assert "3 matching log lines in its window (threshold 3)" in latest["steps"][0]["detail"]

    resolved = await client.put(
        f"{API}/incidents/{incident['id']}/status", json={"status": "resolved"}
    )
    assert resolved.status_code == 200 and resolved.json()["resolved_at"] is not None
    await post(client, entry("after the end", time.time() + 1, host="web-1"))
    await caught_up(bus, STORE_PROJECTION, "LOGS")

    body = await messages(client, incident["id"])
    assert [e["message"] for e in body["entries"]] == [
        "db timeout 3",
        "db timeout 2",
        "db timeout 1",
        "slow query",
    ]
    assert body["next_cursor"] is None
    assert body["filter"]["service"] == "api" and body["filter"]["labels"] == {"host": "web-1"}

    # a shorter lead: the line 10 minutes before is left out; pages as the logs API does
    first = await messages(client, incident["id"], before="5m", limit=2)
    assert [e["message"] for e in first["entries"]] == ["db timeout 3", "db timeout 2"]
    second = await messages(
        client, incident["id"], before="5m", limit=2, cursor=first["next_cursor"]
    )
    assert [e["message"] for e in second["entries"]] == ["db timeout 1"]
    assert second["next_cursor"] is None

    # everything before the incident (an hour) and ancient appears
    wide = await messages(client, incident["id"], before="1h")
    assert [e["message"] for e in wide["entries"]][-1] == "ancient"

    missing = await client.get(f"{API}/incidents/no-such/logs")
    assert missing.status_code == 404 and missing.json()["field"] == "incident_id"
    bad = await client.get(f"{API}/incidents/{incident['id']}/logs", params={"before": "soon"})
    assert bad.status_code == 422 and bad.json()["field"] == "before"
    assert detail(bad).startswith("before: ")


async def test_log_ingest_waits_while_the_running_log_rules_are_far_behind(
    settings: Settings, bus: EventBus, start_service: RuntimeFactory
) -> None:
    gateway = await gateway_behind(settings, start_service, max_backlog=3)
    transport = httpx.ASGITransport(app=gateway.app)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://localhost", headers=ADMIN
    ) as http:
        await bus.js.add_consumer(
            "LOGS",
            ConsumerConfig(
                durable_name="alerts-logs",
                ack_policy=AckPolicy.EXPLICIT,
                filter_subject="logs.entries.>",
            ),
        )
        for n in range(4):
            assert (await http.post(f"{API}/logs", json={"message": f"m{n}"})).status_code == 202
        backlog = gateway.state.log_ingest
        await eventually(lambda: backlog.backlog.get("alerts-logs") == 4, what="backlog")
        # the alerts service is not running: the lines wait in LOGS, ingest goes on
        assert (await http.post(f"{API}/logs", json={"message": "taken"})).status_code == 202
        await bus.nc.publish(subjects.heartbeat("alerts"), heartbeat_payload("alerts", time.time()))
        await eventually(
            lambda: any(
                s.up for s in gateway.state.liveness.status(time.time()) if s.service == "alerts"
            ),
            what="the alerts heartbeat",
        )
        refused = await http.post(f"{API}/logs", json={"message": "wait"})
        assert refused.status_code == 429, refused.text
        assert detail(refused).startswith("alerts-logs is ")


async def test_a_log_rule_through_the_rules_api_reads_back_and_a_bad_one_names_its_field(
    client: httpx.AsyncClient, owners: None
) -> None:
    rules = f"{API}/alerts/rules"
    body = {**RULE, "name": "WebErrors", "logs": {**RULE["logs"], "q": "timeout OR refused"}}
    created = await client.post(rules, json=body)
    assert created.status_code == 201, created.text
    assert created.json()["logs"]["q"] == "timeout OR refused"
    assert created.json()["metric"] == "log_lines"
    for bad, field in (
        ({**body, "logs": {"q": "(open"}}, "logs.q"),
        ({**body, "logs": {"level": ["loud"]}}, "logs.level.0"),
        ({**body, "window": None}, "window"),
        ({**body, "metric": "cpu"}, "metric"),
    ):
        answer = await client.post(rules, json={k: v for k, v in bad.items() if v is not None})
        assert answer.status_code == 422, (bad, answer.text)
        assert detail(answer).startswith(f"{field}: "), answer.json()
