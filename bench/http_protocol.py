"""What the gateway's connection bounds cost per request: uvicorn's own httptools
protocol against the bounded one (time-outs, connection table), side by side in one
process, serving a trivial ASGI app to one client on a raw socket. Rounds alternate
between the two so that a busy machine disturbs both alike; the figure is CPU time of
the whole process (client included, the same for both) per request.

    python -m bench.http_protocol --requests 20000 --rounds 5   # from the repository root
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from typing import Any

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from services.gateway.app import EmbeddedHttpServer
from services.gateway.http_limits import BoundedConfig, HttpLimits
from shared.natsserver import free_port

REQUEST = b"GET /health HTTP/1.1\r\nHost: bench\r\n\r\n"
BODY = b'{"status":"ok"}'


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"application/json"), (b"content-length", b"15")],
        }
    )
    await send({"type": "http.response.body", "body": BODY})


def limits() -> HttpLimits:
    return HttpLimits(
        header_timeout_s=10.0,
        body_timeout_s=60.0,
        keepalive_timeout_s=5.0,
        write_timeout_s=30.0,
        max_connections=10_000,
        backlog=512,
    )


async def serve(config: uvicorn.Config, tasks: list[asyncio.Task[None]]) -> uvicorn.Server:
    server = EmbeddedHttpServer(config)
    tasks.append(asyncio.create_task(server.serve()))
    for _ in range(1000):
        if server.started:
            return server
        await asyncio.sleep(0.01)
    raise RuntimeError(f"the server on port {config.port} did not start")


async def read_response(reader: asyncio.StreamReader) -> None:
    head = await reader.readuntil(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), head
    await reader.readexactly(len(BODY))


async def kept_alive(port: int, requests: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    for _ in range(requests):
        writer.write(REQUEST)
        await read_response(reader)
    writer.close()


async def new_connections(port: int, requests: int) -> None:
    for _ in range(requests):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(REQUEST)
        await read_response(reader)
        writer.close()


async def run(args: argparse.Namespace) -> None:
    plain_port, bounded_port = free_port(), free_port()
    common: dict[str, Any] = {"host": "127.0.0.1", "log_level": "warning", "lifespan": "off"}
    tasks: list[asyncio.Task[None]] = []
    servers = [
        await serve(uvicorn.Config(app, port=plain_port, http=HttpToolsProtocol, **common), tasks),
        await serve(BoundedConfig(app, limits(), port=bounded_port, **common), tasks),
    ]
    for name, client in (("kept-alive", kept_alive), ("new connection", new_connections)):
        cost: dict[str, list[float]] = {"uvicorn": [], "bounded": []}
        for _ in range(args.rounds):
            for label, port in (("uvicorn", plain_port), ("bounded", bounded_port)):
                started = time.process_time()
                await client(port, args.requests)
                cost[label].append(1e6 * (time.process_time() - started) / args.requests)
        for label, figures in cost.items():
            median = statistics.median(figures)
            rounds = ", ".join(f"{f:.1f}" for f in figures)
            print(f"{name:<15} {label:<8} CPU µs per request: {median:6.1f}  (rounds {rounds})")
    for server in servers:
        server.should_exit = True
    await asyncio.gather(*tasks)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20_000, help="per round and server")
    parser.add_argument("--rounds", type=int, default=5)
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
