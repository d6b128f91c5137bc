"""Gateway fixtures: a started gateway on its own NATS and SQLite, and an HTTP client for it."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest

from services.gateway.app import Gateway, build_gateway
from shared.natsserver import free_port
from shared.settings import Settings
from tests.conftest import RuntimeFactory

Predicate = Callable[[], bool | Awaitable[bool]]


async def eventually(predicate: Predicate, within_s: float = 5.0, every_s: float = 0.02) -> None:
    """Poll ``predicate`` until it holds, or fail after ``within_s``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within_s
    while True:
        outcome = predicate()
        if inspect.isawaitable(outcome):
            outcome = await outcome
        if outcome:
            return
        if loop.time() > deadline:
            raise AssertionError(f"condition not met within {within_s}s")
        await asyncio.sleep(every_s)


@pytest.fixture
def gateway_settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"port": free_port()})


@pytest.fixture
async def gateway(gateway_settings: Settings, start_service: RuntimeFactory) -> Gateway:
    """NATS comes first so that it is stopped after the gateway."""
    started = build_gateway(gateway_settings)
    await start_service(started.runtime)
    return started


@pytest.fixture
async def client(gateway: Gateway) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=gateway.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as http:
        yield http


async def checkpoint(gateway: Gateway, projection: str) -> int:
    return await gateway.state.store.last_seq(projection)


def detail(response: httpx.Response) -> Any:
    return response.json()["detail"]
