"""Who the gateway tests call as: the admin is the bootstrap key
(``Settings.bootstrap_admin_key``); keys of the other roles are created through the API."""

from __future__ import annotations

import httpx
from fastapi import FastAPI

from services.gateway.access import Role
from shared.settings import Settings
from tests.conftest import ADMIN_HEADERS, TEST_ADMIN_KEY

ADMIN_KEY = TEST_ADMIN_KEY
ADMIN_ACTOR = "key:bootstrap"
ADMIN = ADMIN_HEADERS


def with_admin_key(settings: Settings) -> Settings:
    return settings.model_copy(update={"bootstrap_admin_key": ADMIN_KEY})


async def headers_for(app: FastAPI, client: httpx.AsyncClient, role: Role) -> dict[str, str]:
    """Authorization for an identity with ``role``, created through the keys API."""
    if role == "admin":
        return ADMIN
    created = await client.post(
        "/api/monitoring/keys", json={"name": f"test-{role}", "role": role}, headers=ADMIN
    )
    assert created.status_code in (200, 201), created.text
    return {"Authorization": f"Bearer {created.json()['key']}"}


def actor_of(role: Role) -> str:
    return ADMIN_ACTOR if role == "admin" else f"key:test-{role}"
