"""Real servers for the outbound guard's tests: a stand-in for the gateway that counts
every request reaching it, a target that redirects wherever asked, a server speaking
another protocol, and a resolver that answers the names a test chooses."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from aiohttp import web
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver

from shared.natsserver import free_port

# A banner like NATS's INFO line: a probe's or channel's error text must never echo it.
BANNER_SECRET = "BANNER-SECRET-7f3a"
BANNER = b'INFO {"server_id":"' + BANNER_SECRET.encode() + b'","version":"2.10.0"}\r\n'


def loopback_urls(port: int, path: str = "/") -> dict[str, str]:
    """Every spelling of this host's loopback the guard must see through."""
    hosts = [
        "127.0.0.1",
        "0.0.0.0",
        "0x7f000001",
        "2130706433",
        "127.1",
        "017700000001",
        "[::1]",
        "[::]",
        "[::ffff:127.0.0.1]",
        "localhost",
    ]
    return {host: f"http://{host}:{port}{path}" for host in hosts}


METADATA_URLS = [
    "http://169.254.169.254/latest/meta-data/",
    "http://[fd00:ec2::254]/latest/meta-data/",
    "http://[::ffff:169.254.169.254]/",
    "http://[fe80::1]:8080/",
    "http://169.254.10.20/",
    "http://0xa9fea9fe/",  # 169.254.169.254 in hex
]


@dataclass
class HttpServer:
    """Answers 200 on every path of both loopbacks; ``/redirect?to=URL&status=302`` sends
    the client on to ``to``. Counts what reached it."""

    port: int
    hits: list[str] = field(default_factory=list)
    methods: list[str] = field(default_factory=list)
    reason: str | None = None  # a reason phrase of its own, to see it is not echoed
    status: int = 200

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.hits.append(request.path_qs)
        self.methods.append(request.method)
        if request.path == "/redirect":
            status = int(request.query.get("status", "302"))
            raise _redirect(status, request.query["to"])
        await request.read()
        return web.Response(status=self.status, reason=self.reason, text="hello")


def _redirect(status: int, location: str) -> web.HTTPException:
    classes: dict[int, type[web.HTTPException]] = {
        301: web.HTTPMovedPermanently,
        302: web.HTTPFound,
        303: web.HTTPSeeOther,
        307: web.HTTPTemporaryRedirect,
        308: web.HTTPPermanentRedirect,
    }
    return classes[status](location=location)  # type: ignore[call-arg]


@contextlib.asynccontextmanager
async def http_server(port: int | None = None) -> AsyncIterator[HttpServer]:
    server = HttpServer(port=port or free_port())
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", server.handle)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", server.port).start()
    with contextlib.suppress(OSError):  # where the host has IPv6 loopback
        await web.TCPSite(runner, "::1", server.port).start()
    try:
        yield server
    finally:
        await runner.cleanup()


@contextlib.asynccontextmanager
async def banner_server() -> AsyncIterator[str]:
    """Speaks first with a non-HTTP banner, like NATS does; yields its URL."""

    async def greet(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError):
            writer.write(BANNER)
            await writer.drain()
            await reader.read(4096)
        writer.close()

    port = free_port()
    server = await asyncio.start_server(greet, "127.0.0.1", port)
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        server.close()
        await server.wait_closed()


class StaticResolver(AbstractResolver):
    """Answers names from a table; other names go to the system resolver. A name given
    several answer sets gets them in turn, the last one kept (DNS rebinding)."""

    def __init__(
        self, table: dict[str, list[str]], rebinding: dict[str, list[list[str]]] | None = None
    ):
        self.table = {name: [list(addresses)] for name, addresses in table.items()}
        for name, answers in (rebinding or {}).items():
            self.table[name] = [list(a) for a in answers]
        self.asked: list[str] = []
        self._system: AbstractResolver | None = None

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        self.asked.append(host)
        answers = self.table.get(host)
        if answers is None:
            self._system = self._system or DefaultResolver()
            return await self._system.resolve(host, port, family)
        addresses = answers.pop(0) if len(answers) > 1 else answers[0]
        return [
            {
                "hostname": host,
                "host": address,
                "port": port,
                "family": socket.AF_INET6 if ":" in address else socket.AF_INET,
                "proto": 0,
                "flags": socket.AI_NUMERICHOST,
            }
            for address in addresses
        ]

    async def close(self) -> None:
        if self._system is not None:
            await self._system.close()
            self._system = None
