"""Rules over HTTP against a real gateway, the real alerts service and a real nats-server:
roles, problem details naming the field, file items read-only, applied on the next sample."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from services.alerts.app import build as build_alerts
from services.gateway.app import Gateway
from shared import subjects
from shared.bus import EventBus
from shared.config import RuleConfig, VigilConfig
from shared.events import AlertFired, Sample, SamplesIngested
from shared.settings import Settings
from tests.conftest import RuntimeFactory
from tests.gateway.identities import ADMIN, ADMIN_ACTOR, headers_for
from tests.waiting import eventually

RULES = "/api/monitoring/alerts/rules"
FILE = VigilConfig(rules=[RuleConfig(name="HighCPU", metric="cpu", warning=70, critical=90)])
# the viewer's key is created through the identity API for each test
VIEWER: dict[str, str] = {}


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    return tmp_path / "vigil.yaml"


@pytest.fixture
async def http(
    gateway: Gateway,
    gateway_settings: Settings,
    start_service: RuntimeFactory,
    config_file: Path,
) -> AsyncIterator[httpx.AsyncClient]:
    """The gateway with the alerts and notifier services, anonymous until a test says."""
    from services.notifier.app import build as build_notifier

    owned = gateway_settings.model_copy(update={"config": config_file})
    await start_service(build_alerts(owned, FILE))
    await start_service(build_notifier(owned, FILE))
    transport = httpx.ASGITransport(app=gateway.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as client:
        VIEWER.clear()
        VIEWER.update(await headers_for(gateway.app, client, "viewer"))
        yield client


async def send(bus: EventBus, metric: str, value: float) -> None:
    sample = Sample(name=metric, value=value, labels={"host": "db-1"})
    await bus.publish(
        subjects.samples("test"),
        SamplesIngested(aggregate_id="test", samples=[sample], received_at=time.time()),
    )


DISK = {"name": "DiskFull", "metric": "disk", "warning": 80, "for": "5m", "summary": "disk"}


async def test_roles_are_enforced(http: httpx.AsyncClient) -> None:
    assert (await http.get(RULES)).status_code == 401
    assert (await http.get(RULES, headers=VIEWER)).status_code == 200
    refused = await http.post(RULES, json=DISK, headers=VIEWER)
    assert refused.status_code == 403
    assert refused.headers["content-type"] == "application/problem+json"
    assert (await http.put(f"{RULES}/DiskFull", json=DISK, headers=VIEWER)).status_code == 403
    assert (await http.delete(f"{RULES}/DiskFull", headers=VIEWER)).status_code == 403


async def test_a_rule_made_over_http_fires_on_the_next_sample_and_reads_like_the_file(
    http: httpx.AsyncClient, bus: EventBus
) -> None:
    created = await http.post(RULES, json=DISK, headers=ADMIN)
    assert created.status_code == 201, created.text
    assert created.headers["location"] == f"{RULES}/DiskFull"
    body = created.json()
    assert (body["for"], body["source"], body["updated_by"], body["version"]) == (
        "5m",
        "api",
        ADMIN_ACTOR,
        1,
    )
    hot = {**DISK, "name": "DiskHot", "for": 0}
    assert (await http.post(RULES, json=hot, headers=ADMIN)).status_code == 201
    await send(bus, "disk", 85)

    async def fired() -> list[AlertFired]:
        return [r.event async for r in bus.replay("ALERTS") if isinstance(r.event, AlertFired)]

    [alert] = await eventually(fired, what="the API rule to fire")
    assert (alert.rule, alert.value) == ("DiskHot", 85)

    listed = (await http.get(RULES, params={"limit": 2}, headers=VIEWER)).json()
    assert [r["name"] for r in listed["items"]] == ["DiskFull", "DiskHot"]
    rest = await http.get(RULES, params={"cursor": listed["next_cursor"]}, headers=VIEWER)
    assert "HighCPU" in [r["name"] for r in rest.json()["items"]]
    files = (await http.get(RULES, params={"source": "file"}, headers=VIEWER)).json()["items"]
    assert {r["source"] for r in files} == {"file"}
    assert [r["name"] for r in files] == ["HighCPU"]

    changed = await http.put(f"{RULES}/DiskFull", json={**DISK, "warning": 60}, headers=ADMIN)
    assert changed.status_code == 200 and changed.json()["warning"] == 60
    assert changed.json()["version"] == 2
    assert (await http.delete(f"{RULES}/DiskFull", headers=ADMIN)).status_code == 204
    missing = await http.get(f"{RULES}/DiskFull", headers=VIEWER)
    assert (missing.status_code, missing.json()["field"]) == (404, "name")


async def test_file_rules_are_read_only_and_bad_fields_are_named(
    http: httpx.AsyncClient, config_file: Path
) -> None:
    high = {"name": "HighCPU", "metric": "cpu", "warning": 1}
    refused = await http.put(f"{RULES}/HighCPU", json=high, headers=ADMIN)
    assert refused.status_code == 409
    assert refused.json()["field"] == "name"
    assert f"managed by the configuration file {config_file}" in refused.json()["detail"]
    assert (await http.post(RULES, json=high, headers=ADMIN)).status_code == 409
    assert (await http.delete(f"{RULES}/HighCPU", headers=ADMIN)).status_code == 409

    cases = [
        ({**DISK, "warning": "hot"}, "warning"),
        ({**DISK, "for": "soon"}, "for"),
        ({**DISK, "by": "ceo@company.com"}, "by"),
        ({**DISK, "critical": 10}, "critical"),
        ({k: v for k, v in DISK.items() if k != "metric"}, "metric"),
        ({**DISK, "function": "avg"}, "window"),
        ({**DISK, "matchers": ["mount=~("]}, "matchers.0"),
        (
            {**DISK, "overrides": [{"matchers": ["mount=/var"], "critical": 1}]},
            "overrides.0.critical",
        ),
        ({**DISK, "annotations": {"summary": "{{ value "}}, "annotations.summary"),
        ({**DISK, "absent_for": "5m"}, "warning"),
    ]
    for body, field in cases:
        answer = await http.post(RULES, json=body, headers=ADMIN)
        assert answer.status_code == 422, (body, answer.text)
        problem = answer.json()
        assert problem["detail"].startswith(f"{field}: "), problem
    renamed = await http.post(RULES, json=DISK, headers=ADMIN)
    assert renamed.status_code == 201
    mismatch = await http.put(f"{RULES}/DiskFull", json={**DISK, "name": "Other"}, headers=ADMIN)
    assert (mismatch.status_code, mismatch.json()["field"]) == (422, "name")


async def test_every_configuration_route_is_guarded_and_documented(http: httpx.AsyncClient) -> None:
    document = (await http.get("/openapi.json")).json()
    routes = {
        path: operations
        for path, operations in document["paths"].items()
        if path.startswith((RULES, "/api/monitoring/channels"))
    }
    assert sorted(routes) == [
        RULES,
        RULES + "/{name}",
        "/api/monitoring/channels",
        "/api/monitoring/channels/{name}",
        "/api/monitoring/channels/{name}/test",  # sends a message, changes nothing
    ]
    for path, operations in routes.items():
        concrete = path.replace("{name}", "Some Rule")
        for method, operation in operations.items():
            assert {"401", "403", "422"} <= set(operation["responses"]), (method, path)
            anonymous = await http.request(method, concrete, json={})
            assert anonymous.status_code == 401, (method, path)
            as_viewer = await http.request(method, concrete, json={}, headers=VIEWER)
            expected = {200, 404} if method == "get" else {403}
            assert as_viewer.status_code in expected, (method, path, as_viewer.text)
            if method != "get" and not path.endswith("/test"):
                assert "409" in operation["responses"], (method, path)
