"""Webhook receivers on real ports, and waiting for a condition with a deadline."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
import pytest
from aiohttp import web

from shared.natsserver import free_port


@dataclass(frozen=True)
class ReceivedRequest:
    at: float
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return orjson.loads(self.body)


@dataclass
class Reply:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    hang_s: float = 0.0


@dataclass
class WebhookReceiver:
    """Answers with the scripted replies in order, then with ``default``; records every request."""

    url: str
    script: list[Reply] = field(default_factory=list)
    default: Reply = field(default_factory=Reply)
    requests: list[ReceivedRequest] = field(default_factory=list)

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.requests.append(ReceivedRequest(time.monotonic(), dict(request.headers), body))
        reply = self.script.pop(0) if self.script else self.default
        if reply.hang_s:
            await asyncio.sleep(reply.hang_s)
        return web.Response(status=reply.status, headers=reply.headers, text="ok")


ReceiverFactory = Callable[..., Awaitable[WebhookReceiver]]


@pytest.fixture
async def receiver_factory() -> AsyncIterator[ReceiverFactory]:
    runners: list[web.AppRunner] = []

    async def start(*script: Reply, default: Reply | None = None) -> WebhookReceiver:
        port = free_port()
        receiver = WebhookReceiver(
            url=f"http://127.0.0.1:{port}/hook", script=list(script), default=default or Reply()
        )
        app = web.Application()
        app.router.add_post("/hook", receiver.handle)
        runner = web.AppRunner(app, shutdown_timeout=0.1)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        runners.append(runner)
        return receiver

    yield start
    for runner in runners:
        await runner.cleanup()
