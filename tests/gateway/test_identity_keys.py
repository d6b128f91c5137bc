"""API keys against a real gateway on a real NATS: the bootstrap key, keys shown once and
stored hashed, roles, revocation and expiry refused on the very next request."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from services.gateway.app import Gateway, build_gateway
from services.gateway.identity import ledger
from services.gateway.identity.credentials import digest
from services.gateway.identity.section import IdentitySettingsError
from shared.settings import Settings
from tests.conftest import TEST_ADMIN_KEY, RuntimeFactory
from tests.gateway.identity_helpers import (
    ME,
    bearer,
    client_for,
    create_key,
    stored_bytes,
)
from tests.waiting import eventually


async def test_the_bootstrap_key_is_an_admin_and_anything_else_is_refused(
    client: httpx.AsyncClient, gateway: Gateway
) -> None:
    me = await client.get(ME)
    assert me.status_code == 200, me.text
    assert me.json()["role"] == "admin" and me.json()["kind"] == "key"

    async with client_for(gateway) as anonymous:
        assert (await anonymous.get(ME)).status_code == 401
        wrong = await anonymous.get(ME, headers=bearer(TEST_ADMIN_KEY + "x"))
        assert wrong.status_code == 401
        assert "unknown or revoked" in wrong.json()["detail"]
        basic = await anonymous.get(ME, headers={"Authorization": "Basic YWRtaW46YWRtaW4="})
        assert basic.status_code == 401
        assert "Bearer" in basic.json()["detail"]


async def test_a_key_is_shown_once_stored_as_a_hash_and_works_with_its_role(
    client: httpx.AsyncClient, gateway: Gateway, gateway_settings: Settings
) -> None:
    created = await create_key(client, "ci deploys", "responder")
    key = created["key"]
    assert key.startswith(f"vk_{created['id']}_") and created["prefix"] == f"vk_{created['id']}_"
    assert len(key.split("_", 2)[2]) >= 43  # 32 random bytes, base64url
    assert created["active"] and created["created_by"] == "key:bootstrap"

    listed = (await client.get("/api/monitoring/keys")).json()
    mine = next(item for item in listed["items"] if item["id"] == created["id"])
    assert "key" not in mine and "key_hash" not in mine and listed["next_cursor"] is None
    assert key not in (await client.get(f"/api/monitoring/keys/{created['id']}")).text

    async with client_for(gateway, bearer(key)) as responder:
        me = (await responder.get(ME)).json()
        assert me == {
            "kind": "key",
            "name": "ci deploys",
            "role": "responder",
            "actor": "key:ci deploys",
            "key_id": created["id"],
            "session_expires_at": None,
        }
        forbidden = await responder.post(
            "/api/monitoring/keys", json={"name": "x", "role": "admin"}
        )
        assert forbidden.status_code == 403
        assert "admin" in forbidden.json()["detail"]

    # the log holds the hash, never the key
    store = Path(gateway_settings.data_dir).parent / "nats"
    raw = stored_bytes(store)
    assert digest(key).encode() in raw
    assert key.encode() not in raw


async def test_a_revoked_key_is_refused_on_the_very_next_request(
    client: httpx.AsyncClient, gateway: Gateway
) -> None:
    created = await create_key(client, "temporary", "viewer")
    async with client_for(gateway, bearer(created["key"])) as viewer:
        assert (await viewer.get(ME)).status_code == 200
        revoked = await client.delete(f"/api/monitoring/keys/{created['id']}")
        assert revoked.status_code == 204, revoked.text
        assert (await viewer.get(ME)).status_code == 401
    again = await client.delete(f"/api/monitoring/keys/{created['id']}")
    assert again.status_code == 204  # revoking twice changes nothing
    shown = (await client.get(f"/api/monitoring/keys/{created['id']}")).json()
    assert shown["active"] is False and shown["revoked_by"] == "key:bootstrap"
    assert (await client.delete("/api/monitoring/keys/nosuchid")).status_code == 404


async def test_a_key_revoked_by_another_writer_is_refused_within_milliseconds(
    client: httpx.AsyncClient, gateway: Gateway
) -> None:
    """As ``vigil key revoke`` does against a running system: straight to the log."""
    created = await create_key(client, "cli-revoked", "viewer")
    async with client_for(gateway, bearer(created["key"])) as viewer:
        assert (await viewer.get(ME)).status_code == 200
        await ledger.revoke_key(gateway.runtime.bus, created["id"], "cli")

        async def refused() -> bool:
            return (await viewer.get(ME)).status_code == 401

        await eventually(refused, within_s=1.0, what="the revoked key refused")


async def test_an_expired_key_is_refused(client: httpx.AsyncClient, gateway: Gateway) -> None:
    expires = datetime.now(UTC) + timedelta(seconds=1.5)
    created = await create_key(client, "short", "viewer", expires_at=expires.isoformat())
    async with client_for(gateway, bearer(created["key"])) as viewer:
        assert (await viewer.get(ME)).status_code == 200
        await asyncio.sleep(max(0.0, (expires - datetime.now(UTC)).total_seconds()) + 0.05)
        refused = await viewer.get(ME)
        assert refused.status_code == 401 and "expired" in refused.json()["detail"]
    listed = (await client.get("/api/monitoring/keys", params={"active": "false"})).json()
    assert [item["name"] for item in listed["items"]] == ["short"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "ceo\u202e", "role": "viewer"}, "name"),
        ({"name": "bell\x07", "role": "viewer"}, "name"),
        ({"name": "", "role": "viewer"}, "name"),
        ({"name": "k", "role": "root"}, "role"),
        ({"name": "k", "role": "viewer", "expires_at": "2001-01-01T00:00:00Z"}, "expires_at"),
        ({"name": "k", "role": "viewer", "by": "ceo@company.com"}, "by"),
    ],
)
async def test_bad_key_requests_name_the_field(
    client: httpx.AsyncClient, body: dict[str, str], field: str
) -> None:
    response = await client.post("/api/monitoring/keys", json=body)
    assert response.status_code == 422, response.text
    assert response.json()["detail"].startswith(f"{field}:")


async def test_the_last_admin_credential_cannot_be_revoked(client: httpx.AsyncClient) -> None:
    async def bootstrap_listed() -> bool:  # the keys' read model catches up after the start
        keys = (await client.get("/api/monitoring/keys")).json()["items"]
        return any(k["name"] == "bootstrap" for k in keys)

    await eventually(bootstrap_listed, within_s=10)
    keys = (await client.get("/api/monitoring/keys")).json()["items"]
    bootstrap = next(k for k in keys if k["name"] == "bootstrap")
    refused = await client.delete(f"/api/monitoring/keys/{bootstrap['id']}")
    assert refused.status_code == 409 and "last administrator" in refused.json()["detail"]


async def test_ingest_keys_only_ingest_and_the_agent_key_is_ensured(
    gateway_settings: Settings, start_service: RuntimeFactory, tmp_path: Path
) -> None:
    agent_file = tmp_path / "agent.key"
    agent_file.write_text("agent-key-abcdefghijklmnopqrstuvwxyz-0123456789\n")
    settings = gateway_settings.model_copy(update={"agent_key_file": agent_file})
    gateway = build_gateway(settings)
    await start_service(gateway.runtime)
    async with client_for(gateway, bearer(agent_file.read_text().strip())) as agent:
        me = (await agent.get(ME)).json()
        assert me["name"] == "vigil-agent" and me["role"] == "ingest"
        assert (await agent.get("/api/monitoring/users")).status_code == 403
    # a second start with the same file finds the key: one key, not two
    await gateway.runtime.stop()
    again = build_gateway(settings)
    await start_service(again.runtime)
    async with client_for(again, bearer(TEST_ADMIN_KEY)) as admin:

        async def agent_keys() -> list[str]:
            keys = (await admin.get("/api/monitoring/keys")).json()["items"]
            return [k["name"] for k in keys if k["name"] == "vigil-agent"]

        # the read model catches up with the log after the start; then there is one key
        async def agent_listed() -> bool:
            return bool(await agent_keys())

        await eventually(agent_listed, within_s=10)
        await asyncio.sleep(0.5)  # a second key, if one were made, would show by now
        assert await agent_keys() == ["vigil-agent"]


def test_a_short_bootstrap_key_stops_the_gateway_with_one_line(gateway_settings: Settings) -> None:
    settings = gateway_settings.model_copy(update={"bootstrap_admin_key": SecretStr("short")})
    with pytest.raises(IdentitySettingsError) as refused:
        build_gateway(settings)
    message = str(refused.value)
    assert "VIGIL_BOOTSTRAP_ADMIN_KEY" in message and "\n" not in message


async def test_keys_survive_a_restart(
    client: httpx.AsyncClient,
    gateway: Gateway,
    gateway_settings: Settings,
    start_service: RuntimeFactory,
) -> None:
    created = await create_key(client, "kept", "viewer")
    revoked = await create_key(client, "gone", "viewer")
    await client.delete(f"/api/monitoring/keys/{revoked['id']}")
    await gateway.runtime.stop()
    again = build_gateway(gateway_settings)
    await start_service(again.runtime)
    async with client_for(again, bearer(created["key"])) as viewer:
        assert (await viewer.get(ME)).status_code == 200
    async with client_for(again, bearer(revoked["key"])) as viewer:
        assert (await viewer.get(ME)).status_code == 401
