"""An HTTP target whose health the test switches, and waiting with a deadline."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from aiohttp import web

from shared.natsserver import free_port


@dataclass
class HttpTarget:
    """Answers ``status`` after ``delay_s``; counts the requests it saw."""

    url: str
    status: int = 200
    delay_s: float = 0.0
    hits: int = 0

    async def handle(self, request: web.Request) -> web.Response:
        self.hits += 1
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        return web.Response(status=self.status, text="hello")


@pytest.fixture
async def target() -> AsyncIterator[HttpTarget]:
    port = free_port()
    http_target = HttpTarget(url=f"http://127.0.0.1:{port}/health")
    app = web.Application()
    app.router.add_route("*", "/health", http_target.handle)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    yield http_target
    await runner.cleanup()
