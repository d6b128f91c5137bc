"""Helpers for the identity and audit tests: clients with a key or a session, and polling."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from services.gateway.app import Gateway

ME = "/api/monitoring/auth/me"


def client_for(gateway: Gateway, headers: dict[str, str] | None = None) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=gateway.app)
    return httpx.AsyncClient(transport=transport, base_url="http://localhost", headers=headers)


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def create_key(
    admin: httpx.AsyncClient, name: str, role: str, **extra: Any
) -> dict[str, Any]:
    response = await admin.post("/api/monitoring/keys", json={"name": name, "role": role, **extra})
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def create_user(
    admin: httpx.AsyncClient, name: str, role: str, password: str
) -> dict[str, Any]:
    response = await admin.post(
        "/api/monitoring/users", json={"name": name, "role": role, "password": password}
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def stored_bytes(directory: Path) -> bytes:
    """Everything written under ``directory``, to search for a secret in clear."""
    return b"".join(p.read_bytes() for p in directory.rglob("*") if p.is_file())
