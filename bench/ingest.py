"""Ingest throughput through the gateway: N senders POST batches for a while, then the
figures: samples accepted per second, samples stored per second, and the backlog left.

Assumes a running Vigil (``vigil up``) at --url. The metric name is not watched by
any default rule, so the load exercises storage and evaluation without firing alerts.

    python bench/ingest.py --url http://127.0.0.1:8080 --senders 4 --duration 30
"""

from __future__ import annotations

import argparse
import asyncio
import time
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson
from auth import add_key_argument, auth_headers

METRICS_PATH = "/api/monitoring/metrics"
STATS_PATH = "/api/monitoring/metrics/stats"
HEALTH_PATH = "/api/monitoring/health/system"


@dataclass
class SenderTally:
    accepted: int = 0
    batches: int = 0
    failures: int = 0
    throttled: int = 0  # 429 answers: Vigil asked the sender to wait
    last_error: str = ""


def batch_body(sender: int, size: int, metric: str) -> bytes:
    """One batch, reused for every POST of a sender: the cost measured is Vigil's, not ours."""
    samples = [
        {
            "name": metric,
            "value": float(n % 50),
            "labels": {"sender": str(sender), "series": str(n % 100)},
        }
        for n in range(size)
    ]
    return orjson.dumps(samples)


async def send_until(
    session: aiohttp.ClientSession, url: str, body: bytes, size: int, stop_at: float
) -> SenderTally:
    tally = SenderTally()
    headers = {"Content-Type": "application/json"}
    while time.monotonic() < stop_at:
        try:
            async with session.post(url, data=body, headers=headers) as response:
                await response.read()
                if response.status == 202:
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


async def metrics_stats(session: aiohttp.ClientSession, base: str) -> dict[str, Any]:
    """The metrics service's stats through the gateway; {} if they cannot be had."""
    try:
        async with session.get(base + STATS_PATH) as response:
            if response.status != 200:
                print(f"GET {STATS_PATH} answered {response.status}: stored figures unknown")
                return {}
            body: dict[str, Any] = await response.json(loads=orjson.loads)
    except (aiohttp.ClientError, TimeoutError) as exc:
        print(f"GET {STATS_PATH} failed ({exc!r}): stored figures unknown")
        return {}
    result = body.get("result")  # tolerate a {"result": ...} envelope
    return result if isinstance(result, dict) else body


async def evaluator_lag(session: aiohttp.ClientSession, base: str) -> int | None:
    """Messages the alerts evaluator has yet to process, from the gateway's health view."""
    try:
        async with session.get(base + HEALTH_PATH) as response:
            body: dict[str, Any] = await response.json(loads=orjson.loads)
    except (aiohttp.ClientError, TimeoutError, ValueError):
        return None
    for consumer in body.get("consumers", []):
        if consumer.get("durable") == "alerts-evaluator":
            return int(consumer.get("lag", 0)) + int(consumer.get("ack_pending", 0))
    return None


async def run(args: argparse.Namespace) -> None:
    base = args.url.rstrip("/")
    connector = aiohttp.TCPConnector(limit=args.senders * 2)
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(
        connector=connector, timeout=timeout, headers=auth_headers(args.key)
    ) as session:
        before = await metrics_stats(session, base)
        started = time.monotonic()
        stop_at = started + args.duration
        tallies = await asyncio.gather(
            *(
                send_until(
                    session,
                    base + METRICS_PATH,
                    batch_body(n, args.batch, args.metric),
                    args.batch,
                    stop_at,
                )
                for n in range(args.senders)
            )
        )
        elapsed = time.monotonic() - started
        after = await metrics_stats(session, base)
        drained_after: float | None = None
        if args.drain > 0 and before and after:
            drain_deadline = time.monotonic() + args.drain
            lag = await evaluator_lag(session, base)
            while (after.get("backlog", 0) > 0 or lag) and time.monotonic() < drain_deadline:
                await asyncio.sleep(0.5)
                after = await metrics_stats(session, base) or after
                lag = await evaluator_lag(session, base)
            if after.get("backlog", 0) == 0 and not lag:
                drained_after = time.monotonic() - started
        lag = await evaluator_lag(session, base)

    accepted = sum(t.accepted for t in tallies)
    failures = sum(t.failures for t in tallies)
    print(f"senders {args.senders}, batch {args.batch}, sending for {elapsed:.1f} s")
    print(f"accepted        {accepted:>12,} samples  {accepted / elapsed:>12,.0f} samples/s")
    if not (before and after):
        print("stored          unknown (no stats from the gateway)")
    else:
        stored = int(after["stored_samples"]) - int(before["stored_samples"])
        window, how = (
            (elapsed, "within the sending window")
            if drained_after is None
            else (drained_after, f"all stored {drained_after:.1f} s after the start")
        )
        print(f"stored          {stored:>12,} samples  {stored / window:>12,.0f} samples/s ({how})")
        print(f"backlog at end  {after['backlog']:>12,} messages (metrics store)")
    print(
        f"evaluator lag   {'unknown' if lag is None else f'{lag:>12,}'} messages (alerts evaluator)"
    )
    print(f"throttled POSTs {sum(t.throttled for t in tallies):>12} (429, retried after a wait)")
    print(
        f"failed POSTs    {failures:>12}" + (f"  last: {_last_error(tallies)}" if failures else "")
    )


def _last_error(tallies: list[SenderTally]) -> str:
    return next((t.last_error for t in reversed(tallies) if t.last_error), "")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_key_argument(parser)
    parser.add_argument("--url", default="http://127.0.0.1:8080", help="Vigil gateway base URL")
    parser.add_argument("--senders", type=int, default=4, help="concurrent senders")
    parser.add_argument("--duration", type=float, default=30.0, help="seconds of sending")
    parser.add_argument("--batch", type=int, default=1000, help="samples per POST")
    parser.add_argument("--metric", default="bench_ingest_value", help="metric name to send")
    parser.add_argument(
        "--drain",
        type=float,
        default=0.0,
        help="after sending, wait up to this many seconds for the backlog to reach 0 "
        "and report the stored rate over the whole run",
    )
    args = parser.parse_args(argv)
    if args.senders < 1 or args.batch < 1 or args.duration <= 0:
        parser.error("--senders, --batch and --duration must be positive")
    return args


if __name__ == "__main__":
    asyncio.run(run(parse_args()))
