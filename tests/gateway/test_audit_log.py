"""The audit log on a real gateway: every write, refused ones included, with who, what,
target, client and outcome; pages and filters; never a secret."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from services.gateway.app import Gateway
from shared.settings import Settings
from tests.gateway.identity_helpers import (
    bearer,
    client_for,
    create_key,
    create_user,
    stored_bytes,
)
from tests.gateway.remote_write_bodies import REMOTE_WRITE_HEADERS, snappy
from tests.waiting import eventually

AUDIT = "/api/monitoring/audit"
PASSWORD = "correct horse battery"


async def audit_entries(
    client: httpx.AsyncClient, count: int, **params: Any
) -> list[dict[str, Any]]:
    """The newest entries once at least ``count`` match."""
    found: list[dict[str, Any]] = []

    async def enough() -> bool:
        nonlocal found
        response = await client.get(AUDIT, params={"limit": 1000, **params})
        assert response.status_code == 200, response.text
        found = response.json()["items"]
        return len(found) >= count

    await eventually(enough)
    return found


async def test_writes_and_refusals_are_recorded_with_who_what_and_outcome(
    client: httpx.AsyncClient, gateway: Gateway
) -> None:
    created = await create_key(client, "viewer key", "viewer")
    await client.delete(f"/api/monitoring/keys/{created['id']}")
    async with client_for(gateway) as anonymous:
        assert (await anonymous.post("/api/monitoring/keys", json={})).status_code == 401
        bogus = bearer("vk_abcd1234_" + "x" * 43)
        assert (
            await anonymous.post("/api/monitoring/keys", json={}, headers=bogus)
        ).status_code == 401
    viewer = await create_key(client, "reader", "viewer")
    async with client_for(gateway, bearer(viewer["key"])) as reader:
        refused = await reader.post("/api/monitoring/keys", json={"name": "x", "role": "admin"})
        assert refused.status_code == 403
        await reader.get("/api/monitoring/auth/me")  # a read: not audited

    entries = await audit_entries(client, 6)
    by_action = [(e["actor"], e["action"], e["status"], e["outcome"]) for e in reversed(entries)]
    assert by_action == [
        ("key:bootstrap", "POST /api/monitoring/keys", 201, "ok"),
        ("key:bootstrap", "DELETE /api/monitoring/keys/{key_id}", 204, "ok"),
        ("anonymous", "POST /api/monitoring/keys", 401, "refused"),
        ("anonymous", "POST /api/monitoring/keys", 401, "refused"),
        ("key:bootstrap", "POST /api/monitoring/keys", 201, "ok"),
        ("key:reader", "POST /api/monitoring/keys", 403, "refused"),
    ]
    revoke = next(e for e in entries if e["method"] == "DELETE")
    assert revoke["target"] == {"key_id": created["id"]}
    assert revoke["identity_kind"] == "key" and revoke["role"] == "admin"
    assert revoke["client"] and datetime.fromisoformat(revoke["time"]) <= datetime.now(UTC)
    presented = [e for e in entries if e["status"] == 401]
    assert sorted(e["key_id"] for e in presented) == ["", "abcd1234"]
    assert all(e["method"] != "GET" for e in entries)


async def test_logins_name_the_account_and_never_record_a_secret(
    client: httpx.AsyncClient, gateway: Gateway, gateway_settings: Settings
) -> None:
    key = await create_key(client, "secretive", "viewer")
    await create_user(client, "alice", "viewer", PASSWORD)
    login = "/api/monitoring/auth/login"
    async with client_for(gateway) as browser:
        await browser.post(login, json={"name": "alice", "password": "wrong password"})
        await browser.post(login, json={"name": "my password is hunter2", "password": "x"})
        assert (await browser.post(login, json={"name": "alice", "password": PASSWORD})).is_success
    entries = await audit_entries(client, 3, action=f"POST {login}")
    assert [(e["actor"], e["identity_kind"], e["status"]) for e in reversed(entries)] == [
        ("alice", "anonymous", 401),
        ("anonymous", "anonymous", 401),  # an unknown name is not recorded: it may be a password
        ("alice", "user", 200),
    ]
    text = (await client.get(AUDIT, params={"limit": 1000})).text
    for secret in (key["key"], PASSWORD, "hunter2"):
        assert secret not in text
    store = Path(gateway_settings.data_dir).parent / "nats"
    raw = stored_bytes(store)
    assert b"hunter2" not in raw and key["key"].encode() not in raw


async def test_accepted_sample_batches_are_left_out_and_refused_ones_recorded(
    client: httpx.AsyncClient,
) -> None:
    sample = {"name": "cpu", "value": 1.0, "labels": {"host": "a"}}
    assert (await client.post("/api/monitoring/metrics", json=[sample])).status_code == 202
    assert (await client.post("/api/monitoring/metrics", json=[{"value": "x"}])).status_code == 422
    written = await client.post("/api/v1/write", content=snappy(b""), headers=REMOTE_WRITE_HEADERS)
    assert written.status_code == 204
    bad = await client.post("/api/v1/write", content=b"\x01", headers=REMOTE_WRITE_HEADERS)
    assert bad.status_code == 400
    await create_key(client, "marker", "viewer")  # recorded after all
    entries = await audit_entries(client, 3)
    ingests = [e for e in entries if e["route"] == "/api/monitoring/metrics"]
    assert [e["status"] for e in ingests] == [422]
    assert ingests[0]["outcome"] == "rejected"
    remote = [e for e in entries if e["route"] == "/api/v1/write"]
    assert [e["status"] for e in remote] == [400]


async def test_the_audit_log_pages_and_filters(client: httpx.AsyncClient) -> None:
    started = datetime.now(UTC)
    for i in range(5):
        await create_key(client, f"k{i}", "viewer")
    await client.post("/api/monitoring/keys", json={"name": "k0", "role": "viewer"})  # 409
    everything = await audit_entries(client, 6)

    first = (await client.get(AUDIT, params={"limit": 4})).json()
    second = (await client.get(AUDIT, params={"limit": 4, "cursor": first["next_cursor"]})).json()
    assert [e["id"] for e in first["items"] + second["items"]] == [e["id"] for e in everything]
    assert second["next_cursor"] is None

    rejected = (await client.get(AUDIT, params={"outcome": "rejected"})).json()["items"]
    assert [e["status"] for e in rejected] == [409]
    assert len((await client.get(AUDIT, params={"actor": "key:bootstrap"})).json()["items"]) == 6
    assert (await client.get(AUDIT, params={"actor": "key:nobody"})).json()["items"] == []
    later = (started + timedelta(hours=1)).isoformat()
    assert (await client.get(AUDIT, params={"since": later})).json()["items"] == []
    assert len((await client.get(AUDIT, params={"until": later})).json()["items"]) == 6
    for params, field in [
        ({"cursor": "not-a-cursor"}, "cursor"),
        ({"limit": 0}, "limit"),
        ({"outcome": "maybe"}, "outcome"),
        ({"action": "POST"}, "action"),
        ({"since": "2030-01-01T00:00:00"}, "since"),
    ]:
        response = await client.get(AUDIT, params=params)
        assert response.status_code == 422, (params, response.text)
        assert response.json()["detail"].startswith(f"{field}:")
