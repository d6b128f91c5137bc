"""The gateway says it is ready only once its port is bound."""

from __future__ import annotations

import socket

import httpx
import pytest

from services.gateway.app import build_gateway
from shared.settings import Settings
from tests.conftest import RuntimeFactory


async def test_gateway_is_ready_only_when_serving(
    gateway_settings: Settings, start_service: RuntimeFactory
) -> None:
    gateway = await start_service(build_gateway(gateway_settings).runtime)
    assert gateway.ready.is_set()
    async with httpx.AsyncClient() as http:
        response = await http.get(f"http://127.0.0.1:{gateway_settings.port}/health")
    assert response.status_code == 200


async def test_gateway_refuses_to_start_when_its_port_is_taken(
    gateway_settings: Settings,
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", gateway_settings.port))
        taken.listen()
        runtime = build_gateway(gateway_settings).runtime
        try:
            with pytest.raises(RuntimeError, match="could not listen"):
                await runtime.start()
            assert not runtime.ready.is_set()
        finally:
            await runtime.stop()
