"""Gateway fixtures: a started gateway on its own NATS and SQLite, and an HTTP client for it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from services.gateway import api
from services.gateway.app import Gateway, build_gateway
from services.gateway.common.state import GatewayState
from shared.natsserver import free_port
from shared.settings import Settings
from tests.conftest import RuntimeFactory
from tests.gateway.identities import ADMIN, install_test_keys, with_admin_key

Predicate = Callable[[], bool | Awaitable[bool]]


@pytest.fixture(autouse=True)
def test_keys_until_identity_is_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every app built in these tests gets the test key table when no identity section
    installed an authenticator."""
    installed = api.install_sections

    def install(app: FastAPI, state: GatewayState) -> None:
        installed(app, state)
        install_test_keys(app)

    monkeypatch.setattr(api, "install_sections", install)


@pytest.fixture
def gateway_settings(settings: Settings) -> Settings:
    return with_admin_key(settings.model_copy(update={"port": free_port()}))


@pytest.fixture
async def gateway(gateway_settings: Settings, start_service: RuntimeFactory) -> Gateway:
    """NATS comes first so that it is stopped after the gateway."""
    started = build_gateway(gateway_settings)
    await start_service(started.runtime)
    return started


@pytest.fixture
async def client(gateway: Gateway) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=gateway.app)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://localhost", headers=ADMIN
    ) as http:
        yield http


async def checkpoint(gateway: Gateway, projection: str) -> int:
    return await gateway.state.store.last_seq(projection)


def detail(response: httpx.Response) -> Any:
    return response.json()["detail"]
