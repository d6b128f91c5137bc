"""Contacts, schedules and escalation policies over HTTP against a real gateway and the
real notifier on a real nats-server: roles, pages, problem details naming the field, the
file's items read-only, and the on-call lookups the gateway answers from its read model."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from services.gateway.app import Gateway
from services.gateway.schedules.queries import get_contact, get_schedule
from services.notifier.app import build as build_notifier
from shared.config import parse_config
from shared.settings import Settings
from tests.conftest import RuntimeFactory
from tests.gateway.identities import ADMIN, ADMIN_ACTOR, headers_for
from tests.waiting import eventually

API = "/api/monitoring"
CONTACTS, SCHEDULES, POLICIES = (
    f"{API}/contacts",
    f"{API}/schedules",
    f"{API}/escalation-policies",
)
FILE = parse_config(
    """
contacts:
  - name: alice
    methods: [{channel: mail, address: alice@example.com}]
schedules:
  - name: primary
    time_zone: Europe/Berlin
    layers:
      - {name: week, users: [alice], start: 2026-01-05, handoff: "10:30"}
escalation_policies:
  - name: default
    steps:
      - notify: [{schedule: primary}]
      - {delay: 10m, notify: [{user: alice}]}
"""
)
VIEWER: dict[str, str] = {}

BOB = {"name": "bob", "methods": [{"channel": "slack", "address": "U0BOB"}]}
NIGHTS = {
    "name": "nights",
    "time_zone": "America/New_York",
    "layers": [
        {"name": "l", "users": ["bob", "alice"], "rotation": "daily", "start": "2026-01-05"}
    ],
    "overrides": [{"user": "alice", "start": "2026-02-01T02:00", "end": "2026-02-01T06:00"}],
}
PAGE_BOB = {
    "name": "page-bob",
    "steps": [
        {"notify": [{"user": "bob"}]},
        {"delay": "15m", "notify": [{"schedule": "nights"}, {"channel": "ops"}]},
    ],
    "repeat": 2,
    "ack_timeout": "1h",
}


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
    owned = gateway_settings.model_copy(update={"config": config_file})
    await start_service(build_notifier(owned, FILE))
    transport = httpx.ASGITransport(app=gateway.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as client:
        VIEWER.clear()
        VIEWER.update(await headers_for(gateway.app, client, "viewer"))
        yield client


async def test_each_kind_is_made_read_changed_and_deleted_by_admins_only(
    http: httpx.AsyncClient, gateway: Gateway
) -> None:
    for path, body in ((CONTACTS, BOB), (SCHEDULES, NIGHTS), (POLICIES, PAGE_BOB)):
        assert (await http.get(path)).status_code == 401
        assert (await http.post(path, json=body, headers=VIEWER)).status_code == 403
        created = await http.post(path, json=body, headers=ADMIN)
        assert created.status_code == 201, created.text
        assert created.headers["location"] == f"{path}/{body['name']}"
        shown = created.json()
        assert (shown["source"], shown["updated_by"], shown["version"]) == ("api", ADMIN_ACTOR, 1)
        again = await http.get(f"{path}/{body['name']}", headers=VIEWER)
        assert again.json() == shown
    policy = (await http.get(f"{POLICIES}/page-bob", headers=VIEWER)).json()
    # written as the file writes it: durations in their short form, no empty targets
    assert (policy["steps"][1]["delay"], policy["ack_timeout"]) == ("15m", "1h")
    assert policy["steps"][1]["notify"][0]["schedule"] == "nights"

    listed = (await http.get(CONTACTS, params={"limit": 1}, headers=VIEWER)).json()
    assert [c["name"] for c in listed["items"]] == ["alice"]
    rest = await http.get(CONTACTS, params={"cursor": listed["next_cursor"]}, headers=VIEWER)
    assert [c["name"] for c in rest.json()["items"]] == ["bob"]
    assert rest.json()["next_cursor"] is None
    api_only = (await http.get(SCHEDULES, params={"source": "api"}, headers=VIEWER)).json()
    assert [s["name"] for s in api_only["items"]] == ["nights"]

    moved = {**BOB, "methods": [{"channel": "mail", "address": "bob@example.com"}]}
    changed = await http.put(f"{CONTACTS}/bob", json=moved, headers=ADMIN)
    assert changed.status_code == 200, changed.text
    assert (changed.json()["version"], changed.json()["methods"][0]["channel"]) == (2, "mail")

    # what the on-call endpoint reads: the schedule and the person, as the notifier has them
    engine = gateway.state.store.engine
    nights = await get_schedule(engine, "nights")
    assert nights is not None and nights.layers[0].users == ["bob", "alice"]
    primary = await get_schedule(engine, "primary")
    assert primary is not None and primary.layers[0].handoff == "10:30"
    bob = await get_contact(engine, "bob")
    assert bob is not None and bob.methods[0].address == "bob@example.com"
    assert await get_schedule(engine, "nobody") is None

    for path, name in ((POLICIES, "page-bob"), (SCHEDULES, "nights"), (CONTACTS, "bob")):
        assert (await http.delete(f"{path}/{name}", headers=VIEWER)).status_code == 403
        assert (await http.delete(f"{path}/{name}", headers=ADMIN)).status_code == 204
        missing = await http.get(f"{path}/{name}", headers=VIEWER)
        assert (missing.status_code, missing.json()["field"]) == (404, "name")
        gone = await http.delete(f"{path}/{name}", headers=ADMIN)
        assert (gone.status_code, gone.json()["field"]) == (404, "name")
    assert await get_contact(engine, "bob") is None


async def test_file_items_are_read_only_and_bad_fields_are_named(
    http: httpx.AsyncClient, config_file: Path
) -> None:
    async def file_items_shown() -> bool:
        return all([await _names(http, path) for path in (CONTACTS, SCHEDULES, POLICIES)])

    await eventually(file_items_shown, what="the file's items in each read model")
    for path, name, body in (
        (CONTACTS, "alice", {**BOB, "name": "alice"}),
        (SCHEDULES, "primary", {**NIGHTS, "name": "primary"}),
        (POLICIES, "default", {**PAGE_BOB, "name": "default"}),
    ):
        shown = (await http.get(f"{path}/{name}", headers=VIEWER)).json()
        assert (shown["source"], shown["file"]) == ("file", str(config_file))
        refused = await http.put(f"{path}/{name}", json=body, headers=ADMIN)
        assert refused.status_code == 409, refused.text
        assert refused.headers["content-type"] == "application/problem+json"
        assert refused.json()["field"] == "name"
        assert f"managed by the configuration file {config_file}" in refused.json()["detail"]
        assert (await http.post(path, json=body, headers=ADMIN)).status_code == 409
        assert (await http.delete(f"{path}/{name}", headers=ADMIN)).status_code == 409

    cases = [
        (CONTACTS, {"name": "eve", "methods": []}, "methods"),
        (CONTACTS, {"name": "eve", "methods": [{"channel": "x"}], "phone": 1}, "phone"),
        (SCHEDULES, {**NIGHTS, "time_zone": "Mars/Olympus"}, "time_zone"),
        (SCHEDULES, {**NIGHTS, "layers": [{**NIGHTS["layers"][0], "handoff": "25:00"}]}, "layers"),
        (POLICIES, {**PAGE_BOB, "steps": [{"notify": [{"user": "a", "schedule": "b"}]}]}, "steps"),
        (POLICIES, {**PAGE_BOB, "repeat": 99}, "repeat"),
        (POLICIES, {**PAGE_BOB, "ack_timeout": "soon"}, "ack_timeout"),
    ]
    for path, body, field in cases:
        answer = await http.post(path, json=body, headers=ADMIN)
        assert answer.status_code == 422, (body, answer.text)
        assert answer.headers["content-type"] == "application/problem+json"
        assert answer.json()["detail"].startswith(field), answer.json()
    assert (await http.post(CONTACTS, json=BOB, headers=ADMIN)).status_code == 201
    assert (await http.post(CONTACTS, json=BOB, headers=ADMIN)).status_code == 409
    renamed = await http.put(f"{CONTACTS}/bob", json={**BOB, "name": "robert"}, headers=ADMIN)
    assert (renamed.status_code, renamed.json()["field"]) == (422, "name")
    absent = await http.put(f"{SCHEDULES}/nope", json={**NIGHTS, "name": "nope"}, headers=ADMIN)
    assert (absent.status_code, absent.json()["field"]) == (404, "name")


async def _names(http: httpx.AsyncClient, path: str) -> list[str]:
    answer = await http.get(path, headers=VIEWER)
    return [item["name"] for item in answer.json()["items"]]


async def test_every_paging_route_is_guarded_and_documented(http: httpx.AsyncClient) -> None:
    document = (await http.get("/openapi.json")).json()
    routes = {
        path: operations
        for path, operations in document["paths"].items()
        if path.startswith((CONTACTS, SCHEDULES, POLICIES))
    }
    assert sorted(routes) == sorted(
        [p for base in (CONTACTS, SCHEDULES, POLICIES) for p in (base, f"{base}/{{name}}")]
    )
    for path, operations in routes.items():
        assert sorted(operations) == (
            ["get", "post"] if not path.endswith("}") else ["delete", "get", "put"]
        )
        for method, operation in operations.items():
            assert {"401", "403", "422"} <= set(operation["responses"]), (method, path)
            if method != "get":
                assert "409" in operation["responses"], (method, path)
