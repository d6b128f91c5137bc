"""GET /api/monitoring/logs/tail over the real HTTP server and nats-server: lines posted
after the tail starts arrive filtered as a search filters; a client that stops reading is
dropped with its queue bounded while another gets every line; the consumer is gone once
no one tails."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import pytest

from services.gateway.app import Gateway, build_gateway
from shared.settings import Settings
from tests.conftest import RuntimeFactory
from tests.gateway.identities import ADMIN
from tests.gateway.test_gateway_live import AUTHORIZATION, next_sse_event
from tests.waiting import eventually

LOGS = "/api/monitoring/logs"
TAIL = f"{LOGS}/tail"


@pytest.fixture
async def served(gateway: Gateway) -> AsyncIterator[httpx.AsyncClient]:
    await eventually(lambda: gateway.http.started)
    base = f"http://127.0.0.1:{gateway.runtime.settings.port}"
    async with httpx.AsyncClient(base_url=base, timeout=10.0, headers=ADMIN) as http:
        yield http


async def post(http: httpx.AsyncClient, entries: list[dict[str, Any]]) -> None:
    response = await http.post(LOGS, json=entries)
    assert response.status_code == 202, response.text


async def log_lines(lines: AsyncIterator[str], count: int) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    while len(out) < count:
        event = await asyncio.wait_for(next_sse_event(lines), 10)
        if event.get("event") == "log":
            out.append(orjson.loads(event["data"]))
    return out


async def test_lines_posted_after_the_tail_starts_arrive_filtered(
    served: httpx.AsyncClient, gateway: Gateway
) -> None:
    await post(served, [{"message": "before the tail db timeout", "level": "error"}])
    params = {
        "level": "error,fatal",
        "service": "api",
        "labels": "host=web-1",
        "q": '"db timeout" -retry',
    }
    async with served.stream("GET", TAIL, params=params) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        lines = response.aiter_lines()
        assert (await asyncio.wait_for(next_sse_event(lines), 5)) == {
            "retry": "2000",
            "comment": "tailing",
        }
        common = {"service": "api", "labels": {"host": "web-1"}}
        await post(
            served,
            [
                {"message": "db timeout on orders", "level": "error", **common, "fields": {"n": 1}},
                {"message": "db timeout, will retry", "level": "error", **common},
                {"message": "db timeout on users", "level": "warn", **common},
                {"message": "db timeout on carts", "level": "error", "service": "web"},
                {"message": "timeout db", "level": "fatal", **common},
                {"message": "db timeout", "level": "error", "service": "api"},
            ],
        )
        await post(
            served,
            [
                {"message": "DB Timeout everywhere", "level": "CRITICAL", **common},
                {"message": "last line", "level": "error", **common, "trace_id": "ab" * 16},
            ],
        )
        first, second = await log_lines(lines, 2)
    assert first["message"] == "db timeout on orders"
    assert first["level"] == "error" and first["service"] == "api"
    assert first["labels"] == {"host": "web-1"} and first["fields"] == {"n": 1}
    assert first["timestamp"] > 0
    assert second["message"] == "DB Timeout everywhere" and second["level"] == "fatal"
    await eventually(lambda: gateway.state.log_tails.subscription is None, what="consumer gone")


async def test_an_unfiltered_tail_gets_every_line_in_order(served: httpx.AsyncClient) -> None:
    async with served.stream("GET", TAIL) as response:
        lines = response.aiter_lines()
        await asyncio.wait_for(next_sse_event(lines), 5)
        for start in (0, 5):
            await post(served, [{"message": f"line {n}"} for n in range(start, start + 5)])
        got = await log_lines(lines, 10)
    assert [line["message"] for line in got] == [f"line {n}" for n in range(10)]


async def test_bad_filters_are_refused_naming_them(served: httpx.AsyncClient) -> None:
    for params, field in (
        ({"q": '"open'}, "q"),
        ({"level": "loud"}, "level"),
        ({"labels": "nope"}, "labels"),
    ):
        response = await served.get(TAIL, params=params)
        assert response.status_code == 422, response.text
        assert response.json()["field"] == field
    anonymous = await served.get(TAIL, headers={"Authorization": ""})
    assert anonymous.status_code == 401


async def test_clients_past_the_limit_are_refused_and_idle_ones_get_keep_alives(
    served: httpx.AsyncClient, gateway: Gateway
) -> None:
    gateway.state.log_tails.max_clients = 1
    gateway.state.keepalive_s = 0.05
    async with served.stream("GET", TAIL) as first:
        lines = first.aiter_lines()
        await asyncio.wait_for(next_sse_event(lines), 5)
        refused = await served.get(TAIL)
        assert refused.status_code == 429
        assert refused.headers["retry-after"] == "30"
        assert (await asyncio.wait_for(next_sse_event(lines), 5)) == {"comment": "keep-alive"}
    await eventually(lambda: not gateway.state.log_tails.clients)


async def test_a_client_that_stops_reading_is_dropped_while_another_gets_every_line(
    gateway_settings: Settings, start_service: RuntimeFactory
) -> None:
    tuned = gateway_settings.model_copy(update={"http_write_timeout_s": 1.0})
    gateway = build_gateway(tuned)
    await start_service(gateway.runtime)
    await eventually(lambda: gateway.http.started)
    tails = gateway.state.log_tails
    tails.queue_bytes = 20_000
    loop = asyncio.get_running_loop()
    stalled = socket.socket()
    stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    stalled.setblocking(False)
    await loop.sock_connect(stalled, ("127.0.0.1", tuned.port))
    await loop.sock_sendall(
        stalled,
        f"GET {TAIL} HTTP/1.1\r\nHost: localhost\r\n".encode() + AUTHORIZATION + b"\r\n",
    )
    base = f"http://127.0.0.1:{tuned.port}"
    received: list[str] = []
    sent: list[str] = []
    async with (
        httpx.AsyncClient(base_url=base, timeout=10.0, headers=ADMIN) as http,
        http.stream("GET", TAIL) as reading,
    ):

        async def read_all() -> None:
            lines = reading.aiter_lines()
            while True:
                event = await next_sse_event(lines)
                if event.get("event") == "log":
                    received.append(orjson.loads(event["data"])["message"])

        reader = asyncio.create_task(read_all())
        await eventually(lambda: len(tails.clients) == 2)
        while tails.dropped == 0 and len(sent) < 20_000:
            batch = [{"message": f"line {len(sent) + n} " + "x" * 200} for n in range(20)]
            await post(http, batch)
            sent += [e["message"] for e in batch]
            for client in list(tails.clients):
                # at most its bound, and one batch (about 6 kB) when it was empty
                assert client.queued_bytes <= tails.queue_bytes + 10_000
            await asyncio.sleep(0.02)
        assert tails.dropped == 1, f"still tailing after {len(sent)} lines"
        assert len(tails.clients) == 1
        await eventually(lambda: len(received) >= len(sent), what="every line read")
        reader.cancel()
    assert received == sent

    # the stalled client's stream ends with the notice, after at most its queue of lines
    drained = b""
    while True:
        try:
            chunk = await asyncio.wait_for(loop.sock_recv(stalled, 65536), 10)
        except ConnectionResetError:
            break
        if not chunk:
            break
        drained += chunk
    stalled.close()
    assert b"event: dropped" in drained
    assert drained.count(b"event: log\n") < len(sent)
    await eventually(lambda: tails.subscription is None, what="consumer gone")
