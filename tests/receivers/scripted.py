"""What every HTTP receiver shares: a real aiohttp server on loopback that records what
it accepted and can be told to fail (429 with Retry-After, 500, ...) or to answer slowly.

A receiver validates the provider's documented format itself: a request it refuses gets
a 400 with the reasons, and the reasons are kept in ``rejected`` so a test shows them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Self

from aiohttp import web

from shared.natsserver import free_port


@dataclass(frozen=True)
class Failure:
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: str = ""


class Invalid(Exception):
    """The request breaks the documented format; the message says how."""

    status = 400


Route = Callable[[web.Request], Awaitable[Any]]


class ScriptedReceiver:
    """Subclasses add routes with ``route(method, path, handler)``; a handler validates
    the request and returns what to record (raising ``Invalid`` to refuse it)."""

    accepted_status = 200

    def __init__(self, host: str = "127.0.0.1", port: int | None = None):
        self.host = host
        self.port = port or free_port()
        self.received: list[Any] = []
        self.rejected: list[str] = []
        self.attempts = 0  # every request, failed or not
        self.delay_s = 0.0
        self._failures: list[Failure] = []
        self._app = web.Application()
        self._runner: web.AppRunner | None = None
        self._arrived = asyncio.Condition()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def route(self, method: str, path: str, handler: Route) -> None:
        async def handle(request: web.Request) -> web.StreamResponse:
            self.attempts += 1
            if self.delay_s:
                await asyncio.sleep(self.delay_s)
            if self._failures:
                failure = self._failures.pop(0)
                return web.Response(
                    status=failure.status, headers=failure.headers, text=failure.body
                )
            try:
                record = await handler(request)
            except Invalid as exc:
                self.rejected.append(str(exc))
                return web.json_response({"errors": [str(exc)]}, status=exc.status)
            self.received.append(record)
            async with self._arrived:
                self._arrived.notify_all()
            return self.response_for(record)

        self._app.router.add_route(method, path, handle)

    def response_for(self, record: Any) -> web.StreamResponse:
        return web.json_response({"status": "ok"}, status=self.accepted_status)

    def fail_next(
        self, status: int = 500, times: int = 1, retry_after: float | None = None, body: str = ""
    ) -> None:
        """The next ``times`` requests get ``status`` (with Retry-After when given)."""
        headers = {} if retry_after is None else {"Retry-After": f"{retry_after:g}"}
        self._failures.extend(Failure(status, headers, body) for _ in range(times))

    async def wait_for(self, count: int = 1, within_s: float = 10.0) -> list[Any]:
        """What was accepted, once at least ``count`` requests were."""
        async with self._arrived:
            await asyncio.wait_for(
                self._arrived.wait_for(lambda: len(self.received) >= count), within_s
            )
        return list(self.received)

    async def start(self) -> Self:
        self._runner = web.AppRunner(self._app, shutdown_timeout=0.1)
        await self._runner.setup()
        await web.TCPSite(self._runner, self.host, self.port).start()
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
