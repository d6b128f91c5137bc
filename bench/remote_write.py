"""Prometheus remote-write throughput: N senders POST snappy protobuf WriteRequests to
``/api/v1/write`` for a while, then samples accepted and stored per second.

Assumes a running Vigil (``vigil up``) at --url and an ingest (or admin) key. Each request
carries fresh timestamps, so none is dropped as a retried copy. ``--parse-only`` measures
the gateway's decoding and validation of one request in this process instead, no server
needed.

    python bench/remote_write.py --url http://127.0.0.1:8080 --senders 4 --duration 30
    python bench/remote_write.py --parse-only --batch 2000
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

import aiohttp
from auth import add_key_argument, auth_headers
from ingest import SenderTally, metrics_stats

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from shared.promwire import REMOTE_WRITE_HEADERS, LabelCache, WriteRequestBuilder

WRITE_PATH = "/api/v1/write"
HEADERS = REMOTE_WRITE_HEADERS


class Bodies:
    """WriteRequests of ``size`` series, one sample each, re-stamped per request: the
    series' labels are encoded once (``LabelCache``), so the sender's cost stays small
    next to Vigil's."""

    def __init__(self, sender: int, size: int, metric: str):
        self.cache = LabelCache(capacity=size + 1)
        self.labels = [{"sender": str(sender), "series": str(n)} for n in range(size)]
        self.metric = metric

    def next(self, ms: int) -> bytes:
        request = WriteRequestBuilder(self.cache)
        for n, labels in enumerate(self.labels):
            request.add(self.metric, labels, float(n % 50), ms)
        return request.encode()


async def send_until(
    session: aiohttp.ClientSession, url: str, bodies: Bodies, size: int, stop_at: float
) -> SenderTally:
    tally = SenderTally()
    last_ms = 0
    while time.monotonic() < stop_at:
        last_ms = max(last_ms + 1, int(time.time() * 1000))
        body = bodies.next(last_ms)
        try:
            async with session.post(url, data=body, headers=HEADERS) as response:
                await response.read()
                if response.status == 204:
                    tally.accepted += size
                    tally.batches += 1
                elif response.status == 429:
                    tally.throttled += 1
                    await asyncio.sleep(float(response.headers.get("Retry-After", "1")))
                else:
                    tally.failures += 1
                    tally.last_error = f"HTTP {response.status}"
        except (aiohttp.ClientError, TimeoutError) as exc:
            tally.failures += 1
            tally.last_error = repr(exc)
            await asyncio.sleep(0.1)
    return tally


async def run(args: argparse.Namespace) -> None:
    base = args.url.rstrip("/")
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(timeout=timeout, headers=auth_headers(args.key)) as session:
        before = await metrics_stats(session, base)
        started = time.monotonic()
        tallies = await asyncio.gather(
            *(
                send_until(
                    session,
                    base + WRITE_PATH,
                    Bodies(n, args.batch, args.metric),
                    args.batch,
                    started + args.duration,
                )
                for n in range(args.senders)
            )
        )
        elapsed = time.monotonic() - started
        after = await metrics_stats(session, base)
    accepted = sum(t.accepted for t in tallies)
    failures = sum(t.failures for t in tallies)
    print(f"senders {args.senders}, batch {args.batch}, sending for {elapsed:.1f} s")
    print(f"accepted        {accepted:>12,} samples  {accepted / elapsed:>12,.0f} samples/s")
    if before and after:
        stored = int(after["stored_samples"]) - int(before["stored_samples"])
        print(f"stored          {stored:>12,} samples  {stored / elapsed:>12,.0f} samples/s")
        print(f"backlog at end  {after['backlog']:>12,} messages (metrics store)")
    print(f"throttled       {sum(t.throttled for t in tallies):>12} (429)")
    last = next((t.last_error for t in tallies if t.last_error), "")
    print(f"failed          {failures:>12}" + (f"  last: {last}" if failures else ""))


def parse_only(args: argparse.Namespace) -> None:
    from services.gateway.metrics.remote_write import parse_remote_write

    bodies = Bodies(0, args.batch, args.metric)
    now = time.time()
    requests = [bodies.next(int(now * 1000) - n) for n in range(20)]
    started = time.perf_counter()
    rounds = 0
    while time.perf_counter() - started < args.duration:
        for body in requests:
            parse_remote_write(body, now, 7 * 86400)
        rounds += len(requests)
    elapsed = time.perf_counter() - started
    per_request_ms = elapsed / rounds * 1000
    print(f"batch {args.batch}: {per_request_ms:.2f} ms per request, decoded and validated")
    print(f"parse           {rounds * args.batch / elapsed:>12,.0f} samples/s (one core)")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_key_argument(parser)
    parser.add_argument("--url", default="http://127.0.0.1:8080", help="Vigil gateway base URL")
    parser.add_argument("--senders", type=int, default=4, help="concurrent senders")
    parser.add_argument("--duration", type=float, default=30.0, help="seconds of sending")
    parser.add_argument("--batch", type=int, default=2000, help="series (samples) per request")
    parser.add_argument("--metric", default="bench_remote_write_value", help="metric name")
    parser.add_argument(
        "--parse-only", action="store_true", help="measure decoding here, send nothing"
    )
    args = parser.parse_args(argv)
    if args.senders < 1 or args.batch < 1 or args.duration <= 0:
        parser.error("--senders, --batch and --duration must be positive")
    return args


if __name__ == "__main__":
    parsed = parse_args()
    if parsed.parse_only:
        parse_only(parsed)
    else:
        asyncio.run(run(parsed))
