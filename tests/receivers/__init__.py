"""Stand-ins for the providers Vigil pages through, on real loopback ports.

Each receiver checks what it is sent against the provider's documented format and
answers the way the provider does: a payload the provider would refuse is refused here
too (and kept in ``rejected`` with the reasons), so a transport that drifts from the
format fails its tests. Every receiver can also be told to misbehave:

    async with SlackReceiver() as slack:
        slack.fail_next(429, retry_after=3)   # the next request: 429 + Retry-After: 3
        slack.fail_next(500, times=2)         # then two 500s
        slack.delay_s = 2.0                   # every answer from now on takes 2 s
        ... slack.url, slack.received ...
"""

from __future__ import annotations

import asyncio
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Self

import orjson
from aiohttp import web

from shared.natsserver import free_port


@dataclass(frozen=True)
class Received:
    """One request as it arrived, accepted or not."""

    at: float
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return orjson.loads(self.body)


@dataclass(frozen=True)
class Rejection:
    request: Received
    problems: list[str]


@dataclass
class Failure:
    status: int
    retry_after: float | None = None
    error: str | None = None  # a provider-specific error code (Slack's "ratelimited", ...)


@dataclass
class Receiver(ABC):
    """A provider on a free loopback port; subclasses give its routes and format rules."""

    host: str = "127.0.0.1"
    port: int = 0
    delay_s: float = 0.0
    received: list[Received] = field(default_factory=list)
    rejected: list[Rejection] = field(default_factory=list)
    _failures: list[Failure] = field(default_factory=list)
    _failed: set[int] = field(default_factory=set)  # ids of requests answered by the script
    _runner: web.AppRunner | None = None

    # --- life ------------------------------------------------------------------

    async def start(self) -> Self:
        self.port = self.port or free_port()
        app = web.Application(client_max_size=4 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, shutdown_timeout=0.1)
        await self._runner.setup()
        await web.TCPSite(self._runner, self.host, self.port).start()
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    @abstractmethod
    def url(self) -> str:
        """Where a channel of this provider points."""

    # --- scripting ---------------------------------------------------------------

    def fail_next(
        self,
        status: int,
        retry_after: float | None = None,
        times: int = 1,
        error: str | None = None,
    ) -> None:
        """Answer the next ``times`` requests with ``status`` (and Retry-After when given)."""
        self._failures.extend(Failure(status, retry_after, error) for _ in range(times))

    @property
    def accepted(self) -> list[Received]:
        """The requests the provider acted on: neither failed as scripted nor refused."""
        refused = {id(r.request) for r in self.rejected} | self._failed
        return [r for r in self.received if id(r) not in refused]

    # --- what subclasses say ---------------------------------------------------

    @abstractmethod
    async def answer(self, request: Received) -> web.Response:
        """The provider's answer to a request that passed no failure script."""

    def failure_response(self, failure: Failure) -> web.Response:
        headers = {}
        if failure.retry_after is not None:
            headers["Retry-After"] = f"{failure.retry_after:g}"
        return web.Response(status=failure.status, headers=headers, text="failure")

    def reject(self, request: Received, problems: list[str]) -> None:
        self.rejected.append(Rejection(request, problems))

    # --- plumbing ------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        received = Received(
            at=time.monotonic(),
            method=request.method,
            path=request.path,
            headers=dict(request.headers),
            body=await request.read(),
        )
        self.received.append(received)
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        if self._failures:
            self._failed.add(id(received))
            return self.failure_response(self._failures.pop(0))
        return await self.answer(received)


def json_body(request: Received) -> tuple[Any, list[str]]:
    """The request's JSON object, or the problem with it."""
    content_type = request.headers.get("Content-Type", "")
    if not content_type.startswith("application/json"):
        return None, [f"Content-Type must be application/json, not {content_type!r}"]
    try:
        body = orjson.loads(request.body)
    except orjson.JSONDecodeError as exc:
        return None, [f"body is not JSON: {exc}"]
    if not isinstance(body, dict):
        return None, ["body must be a JSON object"]
    return body, []


def text_problems(value: Any, where: str, limit: int, required: bool = True) -> list[str]:
    """A string within ``limit`` characters (non-empty when ``required``)."""
    if value is None and not required:
        return []
    if not isinstance(value, str):
        return [f"{where} must be a string"]
    if required and not value.strip():
        return [f"{where} must not be empty"]
    if len(value) > limit:
        return [f"{where} is {len(value)} characters, more than {limit}"]
    return []


def url_problems(value: Any, where: str, limit: int = 3000) -> list[str]:
    problems = text_problems(value, where, limit)
    if not problems and not value.startswith(("http://", "https://")):
        problems.append(f"{where} must be an http(s) URL")
    return problems
