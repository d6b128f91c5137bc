"""PromQL through the whole path: HTTP → gateway → NATS → metrics service → DuckDB → back.

Against a running Vigil (``vigil up``): backfills ``--series`` series x ``--hours`` of
samples at ``--interval`` seconds by remote write (unless ``--no-fill``), waits until the
metrics store holds them, then times each query of the issue's floors as a client (Grafana)
sends it, and prints p50/p90/p99 in ms of the full request, body read included.

    .venv/bin/python bench/query_http.py --url http://127.0.0.1:8080 --key $KEY --hours 24
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path

import aiohttp
from auth import add_key_argument, auth_headers

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from shared.promwire import REMOTE_WRITE_HEADERS, LabelCache, WriteRequestBuilder

STATS_PATH = "/api/monitoring/metrics/stats"


async def stored(session: aiohttp.ClientSession, base: str) -> int:
    async with session.get(base + STATS_PATH) as response:
        return int((await response.json())["stored_samples"])


async def fill(session: aiohttp.ClientSession, args: argparse.Namespace, end_ms: int) -> None:
    """Counters (``bench_http_requests_total``) on ``host``/``series`` labels, in order."""
    cache = LabelCache(args.series + 1)
    points = int(args.hours * 3600 / args.interval)
    start_ms = end_ms - points * args.interval * 1000
    before = await stored(session, args.url)
    bodies: list[bytes] = []
    builder = WriteRequestBuilder(cache)
    for p in range(points):
        ts = start_ms + p * args.interval * 1000
        for n in range(args.series):
            labels = {"host": f"host-{n % 10}", "series": str(n)}
            builder.add("bench_http_requests_total", labels, float(p * (n % 7 + 1)), ts)
            if len(builder) >= 5000:
                bodies.append(builder.encode())
                builder = WriteRequestBuilder(cache)
    if len(builder):
        bodies.append(builder.encode())
    started = time.monotonic()
    for body in bodies:
        while True:
            async with session.post(
                args.url + "/api/v1/write", data=body, headers=REMOTE_WRITE_HEADERS
            ) as response:
                if response.status in (429, 503):
                    await asyncio.sleep(float(response.headers.get("Retry-After", "0.5")))
                    continue
                if response.status >= 300:
                    raise RuntimeError(f"write: HTTP {response.status} {await response.text()}")
                break
    total = points * args.series
    while await stored(session, args.url) - before < total:  # noqa: ASYNC110 (polled over HTTP)
        await asyncio.sleep(0.5)
    print(f"filled {total:,} samples in {time.monotonic() - started:.1f} s")


async def timed(
    session: aiohttp.ClientSession, url: str, form: dict[str, str], runs: int
) -> list[float]:
    took: list[float] = []
    for _ in range(runs):
        started = time.perf_counter()
        async with session.post(url, data=form) as response:
            body = await response.read()
            if response.status != 200:
                raise RuntimeError(f"{form['query']}: HTTP {response.status} {body[:300]!r}")
        took.append((time.perf_counter() - started) * 1000)
    return took


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def run(args: argparse.Namespace) -> None:
    base = args.url.rstrip("/")
    args.url = base
    end_s = int(time.time()) // 60 * 60
    async with aiohttp.ClientSession(headers=auth_headers(args.key)) as session:
        if not args.no_fill:
            await fill(session, args, end_s * 1000)
        day = str(end_s - 86_400)
        queries = [
            ("24 h at 60 s: x", "bench_http_requests_total", day, "60"),
            ("24 h at 60 s: rate(x[5m])", "rate(bench_http_requests_total[5m])", day, "60"),
            (
                "24 h at 60 s: sum by (host) (rate(x[5m]))",
                "sum by (host) (rate(bench_http_requests_total[5m]))",
                day,
                "60",
            ),
            ("30 d at 1 h: x", "bench_http_requests_total", str(end_s - 30 * 86_400), "3600"),
        ]
        print(f"{'query':<45}{'p50':>9}{'p90':>9}{'p99':>9}  ms, {args.runs} runs")
        for label, query, start, step in queries:
            form = {"query": query, "start": start, "end": str(end_s), "step": step}
            await timed(session, base + "/api/v1/query_range", form, 2)  # warm
            took = await timed(session, base + "/api/v1/query_range", form, args.runs)
            print(f"{label:<45}{pct(took, 0.5):>9.1f}{pct(took, 0.9):>9.1f}{pct(took, 0.99):>9.1f}")
        instant = {"query": "sum by (host) (rate(bench_http_requests_total[5m]))"}
        instant["time"] = str(end_s)
        took = await timed(session, base + "/api/v1/query", instant, args.runs)
        label = "instant: sum by (host) (rate(x[5m]))"
        print(f"{label:<45}{pct(took, 0.5):>9.1f}{pct(took, 0.9):>9.1f}{pct(took, 0.99):>9.1f}")
        print(f"mean of all runs {statistics.mean(took):.1f} ms (instant)")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default="http://127.0.0.1:8080")
    add_key_argument(parser)
    parser.add_argument("--series", type=int, default=100)
    parser.add_argument("--hours", type=float, default=24.0)
    parser.add_argument("--interval", type=int, default=10, help="seconds between samples")
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--no-fill", action="store_true", help="query what is there")
    return parser.parse_args(argv)


if __name__ == "__main__":
    asyncio.run(run(parse_args()))
