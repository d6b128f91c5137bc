"""Who the gateway tests call as.

The admin is the bootstrap key (``Settings.bootstrap_admin_key``). While no identity
section installs an authenticator, a fixed table of test keys stands in for it, so the
routes' role checks are exercised either way; with the identity section the keys of the
other roles are created through its API.
"""

from __future__ import annotations

import httpx
from fastapi import FastAPI, Request

from services.gateway.access import Identity, Role
from shared.errors import Unauthenticated
from shared.settings import Settings

ADMIN_KEY = "vigil-test-bootstrap-admin-key-0123456789abcdef"
ADMIN_ACTOR = "key:bootstrap"
ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}
ROLE_KEYS: dict[Role, str] = {
    "admin": ADMIN_KEY,
    "responder": "vigil-test-responder-key-0123456789abcdef0123",
    "viewer": "vigil-test-viewer-key-0123456789abcdef012345678",
    "ingest": "vigil-test-ingest-key-0123456789abcdef01234567",
}


class FixedKeys:
    """A fixed key table, for tests only, until the identity section is installed."""

    async def authenticate(self, request: Request) -> Identity:
        header = request.headers.get("authorization", "")
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "bearer" or not value:
            raise Unauthenticated("Authorization: expected 'Bearer <API key>'", "Authorization")
        for role, key in ROLE_KEYS.items():
            if value.strip() == key:
                name = "bootstrap" if role == "admin" else f"test-{role}"
                return Identity(kind="key", name=name, role=role, key_id=name)
        raise Unauthenticated("the API key is unknown or revoked", field="Authorization")


def with_admin_key(settings: Settings) -> Settings:
    if "bootstrap_admin_key" in type(settings).model_fields:
        return settings.model_copy(update={"bootstrap_admin_key": ADMIN_KEY})
    return settings


def install_test_keys(app: FastAPI) -> None:
    if getattr(app.state, "authenticator", None) is None:
        app.state.authenticator = FixedKeys()


async def headers_for(app: FastAPI, client: httpx.AsyncClient, role: Role) -> dict[str, str]:
    """Authorization for an identity with ``role``."""
    if role == "admin" or isinstance(getattr(app.state, "authenticator", None), FixedKeys):
        return {"Authorization": f"Bearer {ROLE_KEYS[role]}"}
    created = await client.post(
        "/api/monitoring/keys", json={"name": f"test-{role}", "role": role}, headers=ADMIN
    )
    assert created.status_code in (200, 201), created.text
    return {"Authorization": f"Bearer {created.json()['key']}"}


def actor_of(role: Role) -> str:
    return ADMIN_ACTOR if role == "admin" else f"key:test-{role}"
