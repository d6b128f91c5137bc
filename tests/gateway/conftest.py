"""Gateway fixtures: a started gateway on its own NATS and SQLite, and an HTTP client for it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest

from services.gateway.app import Gateway, build_gateway
from shared.natsserver import free_port
from shared.settings import Settings
from tests.conftest import RuntimeFactory
from tests.gateway.identities import ADMIN, with_admin_key

Predicate = Callable[[], bool | Awaitable[bool]]


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
