"""Request rate and latency of the gateway's HTTP server itself: C clients send
``GET /health`` (no database, no NATS round trip) for a while, either all on kept-alive
connections or each request on a new connection, then the figures: requests per second
and latency percentiles. It measures what the server costs per request and per
connection (parsing, time-outs, the connection cap), not the API behind it.

Assumes a running Vigil (``vigil up``) at --url. With --pid (the gateway's process, see
``ps``) it also prints the server's CPU time per request, a figure that a busy machine
disturbs less than the rate.

    python bench/http_requests.py --url http://127.0.0.1:8080 --clients 8 --duration 10
    python bench/http_requests.py --new-connections
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time

import aiohttp
from auth import add_key_argument, auth_headers

PATH = "/health"


async def client_until(
    session: aiohttp.ClientSession, url: str, stop_at: float, latencies: list[float]
) -> int:
    failures = 0
    while time.monotonic() < stop_at:
        started = time.perf_counter()
        try:
            async with session.get(url) as response:
                await response.read()
                if response.status != 200:
                    failures += 1
                    continue
        except (aiohttp.ClientError, TimeoutError):
            failures += 1
            await asyncio.sleep(0.05)
            continue
        latencies.append(time.perf_counter() - started)
    return failures


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a process, from /proc."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def percentile(ordered: list[float], fraction: float) -> float:
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))]


async def run(args: argparse.Namespace) -> None:
    url = args.url.rstrip("/") + PATH
    connector = aiohttp.TCPConnector(limit=args.clients, force_close=args.new_connections)
    timeout = aiohttp.ClientTimeout(total=10)
    latencies: list[float] = []
    async with aiohttp.ClientSession(
        connector=connector, timeout=timeout, headers=auth_headers(args.key)
    ) as session:
        await client_until(session, url, time.monotonic() + 1.0, [])  # warm up
        cpu_before = cpu_seconds(args.pid) if args.pid else 0.0
        started = time.monotonic()
        failures = await asyncio.gather(
            *(
                client_until(session, url, started + args.duration, latencies)
                for _ in range(args.clients)
            )
        )
        elapsed = time.monotonic() - started
        cpu = cpu_seconds(args.pid) - cpu_before if args.pid else 0.0
    ordered = sorted(latencies)
    mode = "a new connection per request" if args.new_connections else "kept-alive connections"
    print(f"{args.clients} clients, {mode}, {elapsed:.1f} s")
    print(f"requests    {len(ordered):>10,}   {len(ordered) / elapsed:>10,.0f} requests/s")
    print(f"failures    {sum(failures):>10,}")
    if ordered:
        ms = [1000 * x for x in ordered]
        print(
            f"latency ms  p50 {percentile(ms, 0.5):.2f}  p99 {percentile(ms, 0.99):.2f}  "
            f"mean {statistics.fmean(ms):.2f}"
        )
        if args.pid:
            print(f"server CPU  {1e6 * cpu / len(ordered):.0f} µs per request")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_key_argument(parser)
    parser.add_argument("--url", default="http://127.0.0.1:8080")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--new-connections", action="store_true")
    parser.add_argument("--pid", type=int, default=0, help="the gateway process, for CPU time")
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
