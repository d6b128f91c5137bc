"""The gateway's HTTP server bounds its connections: clients that send too slowly or sit
idle are closed, and at the connection cap the longest idle one makes room."""

from __future__ import annotations

import asyncio
import math
import os
import resource
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import httpx
import pytest

from services.gateway.app import Gateway, build_gateway
from services.gateway.http_limits import connection_cap, listen_backlog
from shared.settings import Settings
from tests.conftest import RuntimeFactory
from tests.gateway.identities import ADMIN, ADMIN_KEY
from tests.waiting import eventually

TIMEOUT_S = 1.0
KEEPALIVE_S = 0.5
CLOSE_WITHIN_S = 10.0  # generous: a loaded machine, but far short of "never"
# a request answered 200 from the read model alone, whatever else runs
AUTHORIZATION = f"Authorization: Bearer {ADMIN_KEY}\r\n".encode()
GET_ALERTS = b"GET /api/monitoring/alerts HTTP/1.1\r\nHost: localhost\r\n" + AUTHORIZATION + b"\r\n"


@dataclass
class Raw:
    """A client on a bare socket, to send exactly what a slow or idle client sends."""

    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def response(self) -> bytes:
        """One complete response (its length given by Content-Length)."""
        head = await asyncio.wait_for(self.reader.readuntil(b"\r\n\r\n"), 5)
        length = next(
            int(line.split(b":")[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length")
        )
        return head + await asyncio.wait_for(self.reader.readexactly(length), 5)

    async def closed_by_server(self) -> tuple[bytes, float]:
        """What the server sent until it closed, and how long that took."""
        started = time.monotonic()
        try:
            data = await asyncio.wait_for(self.reader.read(), CLOSE_WITHIN_S)
        except ConnectionResetError:
            data = b""
        return data, time.monotonic() - started

    def close(self) -> None:
        self.writer.close()


@pytest.fixture
async def bounded(gateway_settings: Settings, start_service: RuntimeFactory) -> Gateway:
    tuned = gateway_settings.model_copy(
        update={
            "http_header_timeout_s": TIMEOUT_S,
            "http_body_timeout_s": TIMEOUT_S,
            "http_keepalive_timeout_s": KEEPALIVE_S,
        }
    )
    gateway = build_gateway(tuned)
    await start_service(gateway.runtime)
    return gateway


Connect = Callable[[], Awaitable[Raw]]


@pytest.fixture
async def connect(bounded: Gateway) -> AsyncIterator[Connect]:
    """Open bare connections to the gateway; all are closed at the end."""
    opened: list[Raw] = []

    async def open_one() -> Raw:
        reader, writer = await asyncio.open_connection("127.0.0.1", bounded.runtime.settings.port)
        opened.append(Raw(reader, writer))
        return opened[-1]

    yield open_one
    for raw in opened:
        raw.close()


async def test_a_connection_that_sends_nothing_is_closed(connect: Connect) -> None:
    silent = await connect()
    data, after = await silent.closed_by_server()
    assert data == b""
    assert after >= TIMEOUT_S * 0.8


async def test_headers_trickled_byte_by_byte_are_cut_off(connect: Connect) -> None:
    slow = await connect()
    await slow.send(b"GET /health HTTP/1.1\r\nHost: localhost\r\n")
    sent = 0

    async def trickle() -> None:
        nonlocal sent
        while True:
            await asyncio.sleep(0.1)
            await slow.send(b"X-Pad: 1\r\n")
            sent += 1

    trickling = asyncio.create_task(trickle())
    try:
        data, after = await slow.closed_by_server()
    finally:
        trickling.cancel()
    assert data == b""
    assert sent >= 3  # it kept sending, yet was closed
    assert after >= TIMEOUT_S * 0.8


async def test_a_body_sent_too_slowly_is_answered_408(connect: Connect) -> None:
    slow = await connect()
    await slow.send(
        b"POST /api/monitoring/incidents HTTP/1.1\r\nHost: localhost\r\n"
        + AUTHORIZATION
        + b"Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"
    )

    async def trickle() -> None:
        while True:
            await asyncio.sleep(0.1)
            await slow.send(b" ")

    trickling = asyncio.create_task(trickle())
    try:
        data, after = await slow.closed_by_server()
    finally:
        trickling.cancel()
    assert data.startswith(b"HTTP/1.1 408 ")
    assert data.endswith(b'"detail":"the request body came too slowly"}')
    assert b"too slowly" in data
    assert after >= TIMEOUT_S * 0.8


async def test_an_idle_kept_alive_connection_is_closed(connect: Connect) -> None:
    kept = await connect()
    await kept.send(GET_ALERTS)
    assert (await kept.response()).startswith(b"HTTP/1.1 200 ")
    data, after = await kept.closed_by_server()
    assert data == b""
    assert after >= KEEPALIVE_S * 0.8


@pytest.mark.parametrize("stall", [b"GET /hea", b"\r\n"], ids=["half-a-request", "blank-lines"])
async def test_a_kept_alive_connection_that_stalls_in_its_next_request_is_closed(
    connect: Connect, stall: bytes
) -> None:
    """The keep-alive timer stops at the first byte of the next request; the header
    time-out takes over from there."""
    kept = await connect()
    await kept.send(GET_ALERTS)
    await kept.response()
    await kept.send(stall)
    data, after = await kept.closed_by_server()
    assert data == b""
    assert after >= TIMEOUT_S * 0.8


async def test_requests_in_pieces_and_kept_alive_within_the_limits_are_served(
    connect: Connect,
) -> None:
    client = await connect()
    for _ in range(3):
        for piece in (
            b"GET /api/monitoring/al",
            b"erts HTTP/1.1\r\nHost: local",
            b"host\r\n" + AUTHORIZATION,
            b"\r\n",
        ):
            await client.send(piece)
            await asyncio.sleep(TIMEOUT_S / 8)
        assert (await client.response()).startswith(b"HTTP/1.1 200 ")
        await asyncio.sleep(KEEPALIVE_S / 3)
    # a body in two pieces, read whole: its validation names the missing field
    await client.send(
        b"POST /api/monitoring/incidents HTTP/1.1\r\nHost: localhost\r\n"
        + AUTHORIZATION
        + b'Content-Type: application/json\r\nContent-Length: 23\r\n\r\n{"severity": '
    )
    await asyncio.sleep(TIMEOUT_S / 4)
    await client.send(b'"warning"}')
    answer = await client.response()
    assert answer.startswith(b"HTTP/1.1 422 ")
    assert b'"detail":"title: Field required","field":"title"' in answer


# --- the connection cap ---------------------------------------------------------------


@pytest.fixture
async def capped(gateway_settings: Settings, start_service: RuntimeFactory) -> Gateway:
    tuned = gateway_settings.model_copy(update={"http_max_connections": 4})
    gateway = build_gateway(tuned)
    await start_service(gateway.runtime)
    return gateway


async def open_counted(gateway: Gateway) -> Raw:
    """A connection the server has taken in (so the order of arrival is known)."""
    table = gateway.http.connections
    before = table.evicted + len(table.open) + table.refused
    reader, writer = await asyncio.open_connection("127.0.0.1", gateway.runtime.settings.port)
    await eventually(lambda: table.evicted + len(table.open) + table.refused > before)
    return Raw(reader, writer)


async def test_at_the_cap_the_longest_idle_connection_makes_room(capped: Gateway) -> None:
    table = capped.http.connections
    base = f"http://127.0.0.1:{capped.runtime.settings.port}"
    async with httpx.AsyncClient(base_url=base, timeout=5.0, headers=ADMIN) as served:
        async with served.stream("GET", "/api/monitoring/events") as live:
            assert live.status_code == 200  # busy for as long as it streams
            idle = [await open_counted(capped) for _ in range(3)]
            assert len(table.open) == 4

            newcomer = await open_counted(capped)
            assert (await idle[0].closed_by_server())[0] == b""
            await newcomer.send(GET_ALERTS)
            assert (await newcomer.response()).startswith(b"HTTP/1.1 200 ")
            for still_open in idle[1:]:
                await still_open.send(GET_ALERTS)
                assert (await still_open.response()).startswith(b"HTTP/1.1 200 ")
            assert table.evicted >= 1
            assert len(table.open) <= 4
        for raw in [*idle, newcomer]:
            raw.close()


async def test_at_the_cap_with_every_connection_busy_a_newcomer_gets_503(
    capped: Gateway,
) -> None:
    base = f"http://127.0.0.1:{capped.runtime.settings.port}"
    limits = httpx.Limits(max_connections=10)
    async with httpx.AsyncClient(
        base_url=base, timeout=5.0, limits=limits, headers=ADMIN
    ) as served:
        async with (
            served.stream("GET", "/api/monitoring/events"),
            served.stream("GET", "/api/monitoring/events"),
            served.stream("GET", "/api/monitoring/events"),
            served.stream("GET", "/api/monitoring/events"),
        ):
            newcomer = await open_counted(capped)
            data, _ = await newcomer.closed_by_server()
            assert data.startswith(b"HTTP/1.1 503 ")
            assert data.endswith(b'"status":503,"detail":"too many open connections"}')
            assert b"content-type: application/problem+json" in data
            assert capped.http.connections.refused == 1
            newcomer.close()
        # the streams ended: room again
        assert (await served.get("/api/monitoring/alerts")).status_code == 200


# --- a flood of idle sockets ----------------------------------------------------------

FLOOD = 20_600  # more than the open-file limit of 20,000 the issue was found with
FD_HEADROOM = 300  # what a holder process needs beside its sockets


@dataclass
class IdleSocketHolders:
    """Processes holding idle connections to the gateway (each process has its own
    open-file limit, so together they can hold more than the gateway may)."""

    processes: list[asyncio.subprocess.Process]
    held: int = 0

    @classmethod
    async def start(cls, port: int, count: int) -> IdleSocketHolders:
        _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        needed = math.ceil(count / (min(hard, 1 << 20) - FD_HEADROOM))
        command = [sys.executable, "-m", "tests.gateway.idle_sockets", "127.0.0.1", str(port)]
        pipe = asyncio.subprocess.PIPE
        return cls(
            [
                await asyncio.create_subprocess_exec(*command, str(n + 1), stdin=pipe, stdout=pipe)
                for n in range(needed)
            ]
        )

    async def open(self, count: int) -> None:
        """``count`` more connections, shared among the processes, once established."""
        share = math.ceil(count / len(self.processes))
        for process in self.processes:
            assert process.stdin is not None
            process.stdin.write(b"%d\n" % share)
        for process in self.processes:
            assert process.stdout is not None
            line = await asyncio.wait_for(process.stdout.readline(), 60)
            assert line.startswith(b"open "), line
        self.held += share * len(self.processes)

    async def release(self) -> None:
        for process in self.processes:
            if process.returncode is None:
                assert process.stdin is not None
                process.stdin.close()
        for process in self.processes:
            await process.wait()


async def health_answers(http: httpx.AsyncClient) -> None:
    """/health gives its verdict (only the gateway runs here, so after the start-up grace
    it calls the missing services down: 503 "failing" is an answer too)."""
    health = await http.get("/health")
    assert health.status_code in (200, 503)
    verdict = health.json()
    assert verdict["status"] in ("ok", "degraded", "failing")
    assert verdict["nats_connected"] is True


async def test_health_answers_while_more_idle_sockets_are_open_than_files_allowed(
    gateway_settings: Settings, start_service: RuntimeFactory, caplog: pytest.LogCaptureFixture
) -> None:
    # the sockets stay idle for the whole test: what is exercised is the cap, not time-outs
    tuned = gateway_settings.model_copy(update={"http_header_timeout_s": 600.0})
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard > FLOOD:  # a roomier host: hold the gateway to what a 20,000 limit allows
        cap = connection_cap(20_000, listen_backlog(20_000))
        tuned = tuned.model_copy(update={"http_max_connections": cap})
    gateway = build_gateway(tuned)
    await start_service(gateway.runtime)
    port = tuned.port
    table = gateway.http.connections
    cap = gateway.http.limits.max_connections
    file_limit, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    assert cap < file_limit

    def taken_in() -> int:
        return table.evicted + len(table.open)

    holders = await IdleSocketHolders.start(port, FLOOD)
    try:
        # in rounds no bigger than the accept queue, so that no SYN is dropped and retried
        while holders.held < FLOOD:
            await holders.open(min(gateway.http.limits.backlog, FLOOD - holders.held))
            await eventually(lambda: taken_in() >= holders.held, what="a round taken in")
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{port}", timeout=5.0, headers=ADMIN
        ) as http:
            await health_answers(http)
            assert len(table.open) <= cap
            assert table.evicted >= FLOOD - cap
            assert len(os.listdir("/proc/self/fd")) < file_limit
            # normal requests keep working, on new and on kept-alive connections
            for _ in range(3):
                assert (await http.get("/api/monitoring/alerts")).status_code == 200
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as fresh:
                await health_answers(fresh)
    finally:
        await holders.release()
    assert not [r for r in caplog.records if "out of system resource" in r.getMessage()]
    await eventually(lambda: not table.open, within_s=30, what="the flood's sockets closed")
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=5.0) as http:
        await health_answers(http)
